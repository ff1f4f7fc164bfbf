"""Generate src/cuda_ptsz.{h,c}: libcuda's per-thread default stream entry points.

The CUDA runtime compiled with --default-stream per-thread calls `<name>_ptsz` (calls taking a
stream) and `<name>_ptds` (synchronous copies and sets) instead of `<name>`. In them the NULL
stream means CU_STREAM_PER_THREAD; otherwise they are the plain calls. The lists below are the
single source; run `python3 gen_ptsz.py src` after editing them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# name|C parameter list, one entry point per line (the stream parameter is always named s)
PTSZ = """
cuLaunchKernel|CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int shm, CUstream s, void **params, void **extra
cuLaunchCooperativeKernel|CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int shm, CUstream s, void **params
cuLaunchHostFunc|CUstream s, CUhostFn fn, void *user
cuStreamSynchronize|CUstream s
cuStreamQuery|CUstream s
cuStreamWaitEvent|CUstream s, CUevent e, unsigned int flags
cuStreamGetPriority|CUstream s, int *priority
cuStreamGetFlags|CUstream s, unsigned int *flags
cuStreamGetId|CUstream s, unsigned long long *id
cuStreamGetCtx|CUstream s, CUcontext *pctx
cuStreamGetCtx_v2|CUstream s, CUcontext *pctx, CUgreenCtx *pgreen
cuStreamGetDevice|CUstream s, CUdevice *dev
cuStreamAddCallback|CUstream s, CUstreamCallback cb, void *user, unsigned int flags
cuStreamAttachMemAsync|CUstream s, CUdeviceptr p, size_t n, unsigned int flags
cuStreamBeginCapture_v2|CUstream s, CUstreamCaptureMode mode
cuStreamBeginCaptureToGraph|CUstream s, CUgraph g, const CUgraphNode *deps, const CUgraphEdgeData *data, size_t n, CUstreamCaptureMode mode
cuStreamEndCapture|CUstream s, CUgraph *g
cuStreamIsCapturing|CUstream s, CUstreamCaptureStatus *st
cuStreamGetCaptureInfo|CUstream s, CUstreamCaptureStatus *st, cuuint64_t *id
cuStreamGetCaptureInfo_v2|CUstream s, CUstreamCaptureStatus *st, cuuint64_t *id, CUgraph *g, const CUgraphNode **deps, size_t *n
cuStreamGetCaptureInfo_v3|CUstream s, CUstreamCaptureStatus *st, cuuint64_t *id, CUgraph *g, const CUgraphNode **deps, const CUgraphEdgeData **data, size_t *n
cuStreamUpdateCaptureDependencies|CUstream s, CUgraphNode *deps, size_t n, unsigned int flags
cuStreamUpdateCaptureDependencies_v2|CUstream s, CUgraphNode *deps, const CUgraphEdgeData *data, size_t n, unsigned int flags
cuStreamGetAttribute|CUstream s, CUstreamAttrID attr, CUstreamAttrValue *v
cuStreamSetAttribute|CUstream s, CUstreamAttrID attr, const CUstreamAttrValue *v
cuStreamCopyAttributes|CUstream s, CUstream src
cuStreamWriteValue32_v2|CUstream s, CUdeviceptr a, cuuint32_t v, unsigned int flags
cuStreamWriteValue64_v2|CUstream s, CUdeviceptr a, cuuint64_t v, unsigned int flags
cuEventRecord|CUevent e, CUstream s
cuEventRecordWithFlags|CUevent e, CUstream s, unsigned int flags
cuMemcpyAsync|CUdeviceptr d, CUdeviceptr src, size_t n, CUstream s
cuMemcpyHtoDAsync_v2|CUdeviceptr d, const void *src, size_t n, CUstream s
cuMemcpyDtoHAsync_v2|void *d, CUdeviceptr src, size_t n, CUstream s
cuMemcpyDtoDAsync_v2|CUdeviceptr d, CUdeviceptr src, size_t n, CUstream s
cuMemcpyHtoAAsync_v2|CUarray d, size_t off, const void *src, size_t n, CUstream s
cuMemcpyAtoHAsync_v2|void *d, CUarray src, size_t off, size_t n, CUstream s
cuMemcpy2DAsync_v2|const CUDA_MEMCPY2D *p, CUstream s
cuMemcpy3DAsync_v2|const CUDA_MEMCPY3D *p, CUstream s
cuMemcpyPeerAsync|CUdeviceptr d, CUcontext dc, CUdeviceptr src, CUcontext sc, size_t n, CUstream s
cuMemsetD8Async|CUdeviceptr d, unsigned char v, size_t n, CUstream s
cuMemsetD16Async|CUdeviceptr d, unsigned short v, size_t n, CUstream s
cuMemsetD32Async|CUdeviceptr d, unsigned int v, size_t n, CUstream s
cuMemsetD2D8Async|CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h, CUstream s
cuMemsetD2D16Async|CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h, CUstream s
cuMemsetD2D32Async|CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h, CUstream s
cuMemAllocAsync|CUdeviceptr *p, size_t n, CUstream s
cuMemAllocFromPoolAsync|CUdeviceptr *p, size_t n, CUmemoryPool pool, CUstream s
cuMemFreeAsync|CUdeviceptr p, CUstream s
cuMemPrefetchAsync_v2|CUdeviceptr p, size_t n, CUmemLocation loc, unsigned int flags, CUstream s
cuGraphLaunch|CUgraphExec g, CUstream s
cuGraphUpload|CUgraphExec g, CUstream s
cuMemPrefetchAsync|CUdeviceptr p, size_t n, CUdevice d, CUstream s
cuStreamWriteValue32|CUstream s, CUdeviceptr a, cuuint32_t v, unsigned int flags
cuStreamWriteValue64|CUstream s, CUdeviceptr a, cuuint64_t v, unsigned int flags
cuMemcpy3DPeerAsync|const CUDA_MEMCPY3D_PEER *p, CUstream s
"""
PTDS = """
cuMemcpy|CUdeviceptr d, CUdeviceptr src, size_t n
cuMemcpyPeer|CUdeviceptr d, CUcontext dc, CUdeviceptr src, CUcontext sc, size_t n
cuMemcpyHtoD_v2|CUdeviceptr d, const void *src, size_t n
cuMemcpyDtoH_v2|void *d, CUdeviceptr src, size_t n
cuMemcpyDtoD_v2|CUdeviceptr d, CUdeviceptr src, size_t n
cuMemcpyHtoA_v2|CUarray d, size_t off, const void *src, size_t n
cuMemcpyAtoH_v2|void *d, CUarray src, size_t off, size_t n
cuMemcpyDtoA_v2|CUarray d, size_t off, CUdeviceptr src, size_t n
cuMemcpyAtoD_v2|CUdeviceptr d, CUarray src, size_t off, size_t n
cuMemcpyAtoA_v2|CUarray d, size_t doff, CUarray src, size_t soff, size_t n
cuMemcpy2D_v2|const CUDA_MEMCPY2D *p
cuMemcpy2DUnaligned_v2|const CUDA_MEMCPY2D *p
cuMemcpy3D_v2|const CUDA_MEMCPY3D *p
cuMemsetD8_v2|CUdeviceptr d, unsigned char v, size_t n
cuMemsetD16_v2|CUdeviceptr d, unsigned short v, size_t n
cuMemsetD32_v2|CUdeviceptr d, unsigned int v, size_t n
cuMemsetD2D8_v2|CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h
cuMemsetD2D16_v2|CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h
cuMemsetD2D32_v2|CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h
cuMemcpy3DPeer|const CUDA_MEMCPY3D_PEER *p
"""


def parse(block: str, suffix: str) -> list[tuple[str, str, list[str], str]]:
    """(name, parameter list, argument names, suffix) per line of a list above."""
    out = []
    for line in block.strip().splitlines():
        name, params = line.split("|")
        args = [re.findall(r"[A-Za-z_][A-Za-z_0-9]*$", p.strip())[0] for p in params.split(",")]
        out.append((name, params, args, suffix))
    return out


def generate() -> tuple[str, str]:
    """The header and the source."""
    h = ["/* fakegpu libcuda: per-thread default stream entry points "
         "(generated by gen_ptsz.py). */",
         "#ifndef FG_CUDA_PTSZ_H", "#define FG_CUDA_PTSZ_H", "", "#include <cuda.h>", ""]
    c = ["/*", " * fakegpu libcuda: the _ptsz/_ptds entry points (per-thread default stream).",
         " * In them the NULL stream means CU_STREAM_PER_THREAD; otherwise they are the plain "
         "calls.",
         " * Generated by gen_ptsz.py; edit the list there.", " */",
         '#include "cuda_internal.h"', '#include "cuda_ptsz.h"', "",
         "static CUstream pt(CUstream s)", "{", "\treturn s ? s : CU_STREAM_PER_THREAD;", "}", ""]
    for name, params, args, suf in parse(PTSZ, "ptsz") + parse(PTDS, "ptds"):
        proto = f"CUresult {name}_{suf}({params})"
        h.append(proto + ";")
        call = ", ".join(("pt(s)" if (a == "s" and suf == "ptsz") else a) for a in args)
        c += [proto, "{", f"\treturn {name}({call});", "}", ""]
    launch_ex = ("CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, "
                 "void **params, void **extra)")
    c += [launch_ex, "{", "\tCUlaunchConfig c;", "", "\tif (!config)",
          "\t\treturn CUDA_ERROR_INVALID_VALUE;", "\tc = *config;", "\tc.hStream = pt(c.hStream);",
          "\treturn cuLaunchKernelEx(&c, f, params, extra);", "}"]
    h.append(launch_ex + ";")
    h += ["", "#endif /* FG_CUDA_PTSZ_H */"]
    return "\n".join(h) + "\n", "\n".join(c) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not Path(argv[1]).is_dir():
        print("usage: gen_ptsz.py SRC_DIR (writes SRC_DIR/cuda_ptsz.h and cuda_ptsz.c)",
              file=sys.stderr)
        return 2
    header, source = generate()
    Path(argv[1], "cuda_ptsz.h").write_text(header)
    Path(argv[1], "cuda_ptsz.c").write_text(source)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
