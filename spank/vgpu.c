/*
 * slurm-vgpu SPANK plugin: gives `--gres=vgpu:N` jobs N slices of a GPU on their node.
 *
 * Contexts (spank_context()):
 *   allocator/local (sbatch, salloc, srun)  register --vgpu-share and check its value
 *   slurmd                                  flag a reconcile of the placements after a restart
 *   job_script (prolog/epilog, root)        place slices, write/remove per-job files (prolog.c)
 *   remote (slurmstepd)                     per step (init_post_opt, root): read the placement,
 *                                           cut a smaller srun step's limits; per task
 *                                           (task_init): environment; exit: the step's file
 *                                           (step.c)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <slurm/spank.h>

#include "config.h"
#include "log.h"
#include "plugin.h"

SPANK_PLUGIN(vgpu, 1);

static struct vgpu_config config;
static int config_ok;

int vgpu_node_name(spank_t sp, char *buf, size_t len)
{
	const char *env = getenv("SLURMD_NODENAME");
	char host[256];
	size_t n;

	/* The process environment: slurmd exports its name to the prolog/epilog it runs and, up
	 * to 22.05, to the slurmstepd it starts. Never the job's environment (spank_getenv): the
	 * user sets that, and a false name would point a step at another node's files. From
	 * 23.02 on slurmstepd starts with an empty environment: there the node is the host name
	 * (its first label), as NodeName is on a cluster that uses %n. */
	(void)sp;
	if (env && env[0] && strlen(env) < len) {
		memcpy(buf, env, strlen(env) + 1);
		return 0;
	}
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		n = strcspn(host, ".");
		if (n > 0 && n < len) {
			memcpy(buf, host, n);
			buf[n] = '\0';
			return 0;
		}
	}
	buf[0] = '\0';
	return -1;
}

int vgpu_node_paths(spank_t sp, const struct vgpu_config *cfg, char *node, size_t nodelen,
		    char *runtime_dir, char *inventory, char *err, size_t errlen)
{
	int have_node = vgpu_node_name(sp, node, nodelen) == 0;

	if (vgpu_expand_path(cfg->runtime_dir, have_node ? node : NULL, runtime_dir, PATH_MAX) ||
	    vgpu_expand_path(cfg->inventory, have_node ? node : NULL, inventory, PATH_MAX)) {
		snprintf(err, errlen, "cannot expand runtime_dir=%s / inventory=%s (%s)",
			 cfg->runtime_dir, cfg->inventory,
			 have_node ? "too long or unknown %-escape"
				   : "%n needs the node name (SLURMD_NODENAME or the host name)");
		return -1;
	}
	return 0;
}

/* Slurm does not call slurm_spank_init before job_prolog/job_epilog, so every callback
 * parses the plugstack arguments it is given (once per process). */
static int load_config(int ac, char **av)
{
	char err[512];

	if (config_ok)
		return 0;
	if (vgpu_config_parse(&config, ac, av, err, sizeof(err))) {
		slurm_error("vgpu: %s", err);
		return -1;
	}
	config_ok = 1;
	return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();

	if (load_config(ac, av))
		return -1;
	if (ctx == S_CTX_LOCAL || ctx == S_CTX_ALLOCATOR || ctx == S_CTX_REMOTE)
		return vgpu_args_register(sp);
	if (ctx == S_CTX_SLURMD)
		vgpu_mark_reconcile(sp, &config);
	return 0;
}

static long elapsed_us(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000000L + (now.tv_nsec - start->tv_nsec) / 1000L;
}

/* Per step, in slurmstepd as root (before privileges are dropped for user_init): root is
 * needed to write a step's own limits file. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	struct timespec start;
	int rc;

	(void)ac;
	(void)av;
	if (!config_ok || !spank_remote(sp))
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	rc = vgpu_step_setup(sp, &config);
	/* the benchmark reads these (SlurmdDebug=debug) for the plugin's own share of a launch */
	vgpu_log_debug("step setup took %ld us (%s)", elapsed_us(&start),
		       vgpu_step_has_slices() ? "vgpu job" : "plain job");
	return rc;
}

/* After slurmstepd has connected the step's output: a denial reaches the user from here. */
int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	if (config_ok && spank_remote(sp))
		vgpu_step_tell_user();
	return 0;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	if (!config_ok || !spank_remote(sp))
		return 0;
	return vgpu_task_setup(sp, &config);
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	if (config_ok && spank_remote(sp))
		vgpu_step_exit();
	return 0;
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	struct timespec start;
	int rc;

	if (load_config(ac, av))
		return 0; /* logged; a prolog/epilog error would drain the node */
	clock_gettime(CLOCK_MONOTONIC, &start);
	rc = vgpu_job_prolog(sp, &config, 0);
	vgpu_log_debug("job prolog took %ld us", elapsed_us(&start));
	return rc;
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	if (load_config(ac, av))
		return 0; /* logged; a prolog/epilog error would drain the node */
	return vgpu_job_epilog(sp, &config);
}
