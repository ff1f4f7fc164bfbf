/* Job options: --vgpu-share=guaranteed|burst, registered so sbatch, salloc and srun take it. */
#include <string.h>

#include <slurm/spank.h>

#include "plugin.h"
#include "vgpu_abi.h"

#define SHARE_OPT_VAL 1

static uint32_t share_policy = VGPU_SHARE_GUARANTEED;

static int parse_share(const char *arg, uint32_t *out)
{
	if (arg && !strcmp(arg, "guaranteed")) {
		*out = VGPU_SHARE_GUARANTEED;
		return 0;
	}
	if (arg && !strcmp(arg, "burst")) {
		*out = VGPU_SHARE_BURST;
		return 0;
	}
	return -1;
}

static int share_cb(int val, const char *optarg, int remote)
{
	(void)val;
	(void)remote;
	if (parse_share(optarg, &share_policy)) {
		slurm_error("vgpu: --vgpu-share=%s is not valid: use --vgpu-share=guaranteed (the "
			    "default: compute capped at the job's slices when the GPU is busy) or "
			    "--vgpu-share=burst (may use compute other jobs leave idle)",
			    optarg ? optarg : "");
		return -1;
	}
	return 0;
}

static struct spank_option share_option = {
	"vgpu-share", "guaranteed|burst",
	"How a --gres=vgpu job shares its GPU's compute: 'guaranteed' (default) holds it to its "
	"slices' share when the GPU is contended; 'burst' lets it use compute others leave idle.",
	1, SHARE_OPT_VAL, (spank_opt_cb_f)share_cb
};

uint32_t vgpu_args_share(void)
{
	return share_policy;
}

int vgpu_args_register(spank_t sp)
{
	spank_err_t rc = spank_option_register(sp, &share_option);

	if (rc != ESPANK_SUCCESS) {
		slurm_error("vgpu: cannot register --vgpu-share: %s", spank_strerror(rc));
		return -1;
	}
	return 0;
}

uint32_t vgpu_args_share_in_prolog(spank_t sp)
{
	char *arg = NULL;
	uint32_t out = VGPU_SHARE_GUARANTEED;

	if (spank_option_getopt(sp, &share_option, &arg) == ESPANK_SUCCESS &&
	    parse_share(arg, &out))
		slurm_error("vgpu: job option --vgpu-share=%s ignored (not guaranteed|burst)",
			    arg ? arg : "");
	return out;
}
