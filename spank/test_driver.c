/*
 * Unit-test driver for the plugin's Slurm-free modules, run by tests/test_spank_units.py.
 *   gres-detail NAME DETAIL            -> "count N" | "error"
 *   tres NAME TRES                     -> "found N" | "absent" | "error"
 *   config ARG...                      -> the parsed settings | "error: ..."
 *   expand TEMPLATE NODE               -> the path | "error"
 *   inventory PATH                     -> one line per GPU | "error: ..."
 *   place RUNTIME_DIR INVENTORY JOB N [PARTITION QOS]
 *                                      -> "placed gpu<i>:<n>[+...]" | "error: ..." (the
 *                                         prolog's locked read-place-write, minus Slurm; with
 *                                         PARTITION and QOS ("" = unknown) a job that does not
 *                                         fit falls back on RUNTIME_DIR/lent, for the
 *                                         inventory's node, as the prolog does;
 *                                         "refused: ..." when it is not preemptible but
 *                                         would fit there: the prolog requeues it)
 *   lent PATH NODE INVENTORY           -> "absent" | "lent total=N gpu<i>:<n>... partitions=..
 *                                         qos=.." | "error: ..."
 *   release RUNTIME_DIR JOB            -> "released N"
 *   limits OUT INVENTORY JOB UID SHARE GPU:SLICES... -> writes a limits file
 *   step-limits JOB_LIMITS SLICES OUT  -> "step" (OUT written) | "job" (job's limits apply)
 *   state PATH UID GID                 -> creates the empty state file
 *   lock PATH TIMEOUT_MS [HOLD_MS]     -> "locked" | "error: ..."
 *   visible INVENTORY LIMITS|- VISIBLE_ENV
 *                                      -> "vendor=<v>" then "set NAME=VALUE" / "unset NAME"
 *                                         per variable, in order | "error: ..." (LIMITS "-":
 *                                         a step holding no slices)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fsutil.h"
#include "gres.h"
#include "inventory.h"
#include "jobfiles.h"
#include "lent.h"
#include "placement.h"
#include "visible.h"

static struct vgpu_inventory inv;
static struct vgpu_placements table;
static struct vgpu_limits lim;
static struct vgpu_lent lent;

static int cmd_place(const char *rdir, const char *inv_path, uint32_t job, uint32_t want,
		     const char *partition, const char *qos)
{
	char err[512], tpath[4096], lpath[4096], summary[256], lent_path[4096], why[512];
	struct vgpu_place_entry out[VGPU_MAX_GPUS];
	uint32_t n = 0;
	int fd, rv = 1;

	if (vgpu_inventory_load(inv_path, &inv, err, sizeof(err)) ||
	    vgpu_mkdir_root(rdir, 0755, err, sizeof(err))) {
		printf("error: %s\n", err);
		return 1;
	}
	snprintf(tpath, sizeof(tpath), "%s/placements", rdir);
	snprintf(lpath, sizeof(lpath), "%s/placements.lock", rdir);
	fd = vgpu_lock(lpath, 5000, err, sizeof(err));
	if (fd < 0) {
		printf("error: %s\n", err);
		return 1;
	}
	if (vgpu_placements_read(tpath, &table, err, sizeof(err)))
		goto fail;
	vgpu_placements_drop(&table, job);
	if (vgpu_place(&inv, &table, NULL, want, out, &n, err, sizeof(err))) {
		int rc;

		if (!partition)
			goto fail;
		snprintf(lent_path, sizeof(lent_path), "%s/lent", rdir);
		rc = vgpu_lent_load(lent_path, inv.node, &inv, &lent, why, sizeof(why));
		if (rc < 0)
			fprintf(stderr, "vgpu: ignoring the lent file, nothing counts as lent: %s\n",
				why);
		if (rc <= 0)
			goto fail;
		rc = vgpu_place_lent(&inv, &table, &lent, partition, qos, want, out, &n, err,
				     sizeof(err));
		if (rc == VGPU_LENT_REFUSED) {
			printf("refused: %s\n", err); /* the prolog requeues such a job */
			vgpu_unlock(fd);
			return 1;
		}
		if (rc)
			goto fail;
	}
	if (vgpu_placements_add(&table, job, out, n) ||
	    vgpu_placements_write(tpath, &table, err, sizeof(err)))
		goto fail;
	if (vgpu_limits_build(&lim, job, 0, 0, &inv, out, n, err, sizeof(err)))
		goto fail;
	vgpu_placement_summary(&lim, summary, sizeof(summary));
	printf("placed %s\n", summary);
	rv = 0;
fail:
	if (rv)
		printf("error: %s\n", err);
	vgpu_unlock(fd);
	return rv;
}

static int cmd_release(const char *rdir, uint32_t job)
{
	char err[512], tpath[4096];
	uint32_t n;

	snprintf(tpath, sizeof(tpath), "%s/placements", rdir);
	if (vgpu_placements_read(tpath, &table, err, sizeof(err))) {
		printf("error: %s\n", err);
		return 1;
	}
	n = vgpu_placements_drop(&table, job);
	if (vgpu_placements_write(tpath, &table, err, sizeof(err))) {
		printf("error: %s\n", err);
		return 1;
	}
	printf("released %u\n", n);
	return 0;
}

static int cmd_limits(int argc, char **argv)
{
	struct vgpu_place_entry e[VGPU_MAX_GPUS];
	char err[512];
	uint32_t n = 0;

	if (vgpu_inventory_load(argv[3], &inv, err, sizeof(err))) {
		printf("error: %s\n", err);
		return 1;
	}
	for (int i = 7; i < argc && n < VGPU_MAX_GPUS; i++, n++)
		if (sscanf(argv[i], "%u:%u", &e[n].gpu_index, &e[n].slices) != 2)
			return 2;
	if (vgpu_limits_build(&lim, strtoull(argv[4], NULL, 10), (uid_t)atoi(argv[5]),
			      (uint32_t)atoi(argv[6]), &inv, e, n, err, sizeof(err)) ||
	    vgpu_limits_write(argv[2], &lim, err, sizeof(err))) {
		printf("error: %s\n", err);
		return 1;
	}
	printf("written\n");
	return 0;
}

int main(int argc, char **argv)
{
	char err[512], buf[4096];
	uint32_t count = 0;
	const char *cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "gres-detail") && argc == 4) {
		if (vgpu_gres_detail_count(argv[3], argv[2], &count))
			printf("error\n");
		else
			printf("count %u\n", count);
		return 0;
	}
	if (!strcmp(cmd, "tres") && argc == 4) {
		int rc = vgpu_tres_count(argv[3], argv[2], &count);

		if (rc < 0)
			printf("error\n");
		else if (rc == 0)
			printf("absent\n");
		else
			printf("found %u\n", count);
		return 0;
	}
	if (!strcmp(cmd, "config")) {
		struct vgpu_config cfg;

		if (vgpu_config_parse(&cfg, argc - 2, argv + 2, err, sizeof(err))) {
			printf("error: %s\n", err);
			return 1;
		}
		printf("runtime_dir=%s\ninventory=%s\nhook=%s\ngres=%s\nvisible_env=%s\n"
		       "on_error=%s\nlock_timeout_ms=%d\naccounting=%s\n", cfg.runtime_dir,
		       cfg.inventory, cfg.hook, cfg.gres_name, cfg.visible_env,
		       cfg.on_error == VGPU_ON_ERROR_ALLOW ? "allow" : "deny",
		       cfg.lock_timeout_ms, cfg.admin_comment ? "admin_comment" : "none");
		return 0;
	}
	if (!strcmp(cmd, "expand") && argc == 4) {
		if (vgpu_expand_path(argv[2], argv[3][0] ? argv[3] : NULL, buf, sizeof(buf)))
			printf("error\n");
		else
			printf("%s\n", buf);
		return 0;
	}
	if (!strcmp(cmd, "inventory") && argc == 3) {
		if (vgpu_inventory_load(argv[2], &inv, err, sizeof(err))) {
			printf("error: %s\n", err);
			return 1;
		}
		printf("node=%s gpus=%u\n", inv.node, inv.ngpus);
		for (uint32_t i = 0; i < inv.ngpus; i++)
			printf("gpu index=%u uuid=%s slices=%u slice_bytes=%llu slice_permille=%u%s\n",
			       inv.gpu[i].index, inv.gpu[i].uuid, inv.gpu[i].slices,
			       (unsigned long long)inv.gpu[i].slice_bytes, inv.gpu[i].slice_permille,
			       inv.gpu[i].vendor == VGPU_VENDOR_AMD ? " vendor=amd" : "");
		return 0;
	}
	if (!strcmp(cmd, "place") && (argc == 6 || argc == 8))
		return cmd_place(argv[2], argv[3], (uint32_t)strtoul(argv[4], NULL, 10),
				 (uint32_t)strtoul(argv[5], NULL, 10), argc == 8 ? argv[6] : NULL,
				 argc == 8 ? argv[7] : NULL);
	if (!strcmp(cmd, "lent") && argc == 5) {
		int rc;

		if (vgpu_inventory_load(argv[4], &inv, err, sizeof(err))) {
			printf("error: %s\n", err);
			return 1;
		}
		rc = vgpu_lent_load(argv[2], argv[3], &inv, &lent, err, sizeof(err));
		if (rc < 0) {
			printf("error: %s\n", err);
			return 1;
		}
		if (rc == 0) {
			printf("absent\n");
			return 0;
		}
		printf("lent total=%u", lent.total);
		for (uint32_t i = 0; i < inv.ngpus; i++)
			if (lent.slices[i])
				printf(" gpu%u:%u", inv.gpu[i].index, lent.slices[i]);
		printf(" partitions=%s qos=%s\n", lent.partitions, lent.qos);
		return 0;
	}
	if (!strcmp(cmd, "release") && argc == 4)
		return cmd_release(argv[2], (uint32_t)strtoul(argv[3], NULL, 10));
	if (!strcmp(cmd, "limits") && argc >= 8)
		return cmd_limits(argc, argv);
	if (!strcmp(cmd, "step-limits") && argc == 5) {
		static struct vgpu_limits step;
		int rc;

		if (vgpu_limits_read(argv[2], &lim, err, sizeof(err))) {
			printf("error: %s\n", err);
			return 1;
		}
		rc = vgpu_limits_for_step(&lim, (uint32_t)strtoul(argv[3], NULL, 10), &step);
		if (rc == 1 && vgpu_limits_write(argv[4], &step, err, sizeof(err))) {
			printf("error: %s\n", err);
			return 1;
		}
		printf("%s\n", rc == 1 ? "step" : "job");
		return 0;
	}
	if (!strcmp(cmd, "state") && argc == 5) {
		if (vgpu_state_create(argv[2], (uid_t)atoi(argv[3]), (gid_t)atoi(argv[4]), err,
				      sizeof(err))) {
			printf("error: %s\n", err);
			return 1;
		}
		printf("created\n");
		return 0;
	}
	if (!strcmp(cmd, "lock") && (argc == 4 || argc == 5)) {
		int fd = vgpu_lock(argv[2], atoi(argv[3]), err, sizeof(err));

		if (fd < 0) {
			printf("error: %s\n", err);
			return 1;
		}
		printf("locked\n");
		fflush(stdout);
		if (argc == 5) {
			struct timespec ts = { atoi(argv[4]) / 1000, (atoi(argv[4]) % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		vgpu_unlock(fd);
		return 0;
	}
	if (!strcmp(cmd, "visible") && argc == 5) {
		static struct vgpu_env_ops ops;
		struct vgpu_config cfg;
		char arg[512];
		char *cargv[1] = { arg };

		snprintf(arg, sizeof(arg), "visible_env=%s", argv[4]);
		if (vgpu_config_parse(&cfg, 1, cargv, err, sizeof(err)) ||
		    vgpu_inventory_load(argv[2], &inv, err, sizeof(err)) ||
		    (strcmp(argv[3], "-") && vgpu_limits_read(argv[3], &lim, err, sizeof(err))) ||
		    vgpu_visible_env(&cfg, &inv, strcmp(argv[3], "-") ? &lim : NULL, &ops, err,
				     sizeof(err))) {
			printf("error: %s\n", err);
			return 1;
		}
		printf("vendor=%s\n", strcmp(argv[3], "-") ? vgpu_vendor_name(ops.vendor) : "-");
		for (uint32_t i = 0; i < ops.n; i++) {
			if (ops.op[i].unset)
				printf("unset %s\n", ops.op[i].name);
			else
				printf("set %s=%s\n", ops.op[i].name, ops.op[i].value);
		}
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of test_driver.c\n");
	return 2;
}
