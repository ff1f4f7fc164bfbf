/* fakegpu libamdhip64: error names (generated from Debian's hip_runtime_api.h) and texts. */
#include "hip_internal.h"

static const struct {
	hipError_t code;
	const char *name;
} names[] = {
#define X(n) { n, #n },
#include "hip_error_names.h"
#undef X
};

/* Descriptions for the codes the simulation returns; the others read as their names. */
static const struct {
	hipError_t code;
	const char *text;
} texts[] = {
	{ hipSuccess, "no error" },
	{ hipErrorInvalidValue, "invalid argument" },
	{ hipErrorOutOfMemory, "out of memory" },
	{ hipErrorNotInitialized, "initialization error" },
	{ hipErrorInvalidDevice, "invalid device ordinal" },
	{ hipErrorNoDevice, "no ROCm-capable device is detected" },
	{ hipErrorInvalidDevicePointer, "invalid device pointer" },
	{ hipErrorInvalidMemcpyDirection, "invalid copy direction for memcpy" },
	{ hipErrorInvalidDeviceFunction, "invalid device function" },
	{ hipErrorInvalidConfiguration, "invalid configuration argument" },
	{ hipErrorInvalidHandle, "invalid resource handle" },
	{ hipErrorNotFound, "named symbol not found" },
	{ hipErrorNotReady, "device not ready" },
	{ hipErrorLaunchTimeOut, "the launch timed out and was terminated" },
	{ hipErrorCooperativeLaunchTooLarge, "too many blocks in cooperative launch" },
	{ hipErrorNotSupported, "operation not supported" },
	{ hipErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing" },
	{ hipErrorStreamCaptureUnmatched, "capture was not initiated in this stream" },
	{ hipErrorIllegalState, "the operation cannot be performed in the present state" },
	{ hipErrorUnknown, "unknown error" },
};

const char *hipGetErrorName(hipError_t e)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].code == e)
			return names[i].name;
	return "hipErrorUnknown";
}

const char *hipGetErrorString(hipError_t e)
{
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].code == e)
			return texts[i].text;
	return hipGetErrorName(e);
}
