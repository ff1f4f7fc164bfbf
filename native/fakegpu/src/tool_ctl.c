/*
 * fakegpu-ctl: create or maintain a simulated machine's state file.
 *
 *   fakegpu-ctl create [--state PATH] [--count N] [--mem 16G[,80G...]] [--sms N[,..]]
 *                      [--name NAME[,..]] [--cc 8.0[,..]] [--uuid GPU-..[,..]] [--pci BUSID[,..]]
 *                      [--kernel-ns NS] [--blocks-per-sm N] [--alloc-granularity SIZE]
 *                      [--util-window-ms MS] [--ctx-overhead SIZE] [--force]
 *                      [--vendor nvidia|amd] [--arch gfx90a[,..]] (AMD devices' gfx arch)
 *   fakegpu-ctl reap   [--state PATH]   give back memory held by exited processes
 *   fakegpu-ctl hold-lock SECONDS [--state PATH]
 *                      hold the state lock (tests kill it to check lock recovery)
 *
 * Options override the FAKEGPU_* variables of the same meaning; --state overrides
 * FAKEGPU_STATE (%n expands to $SLURMD_NODENAME). Exit 0 ok, 1 failure, 2 bad usage.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fg_state.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: fakegpu-ctl create [--state PATH] [--count N] [--mem SIZE[,SIZE..]] "
		"[--sms N[,..]]\n"
		"                          [--name NAME[,..]] [--cc MAJOR.MINOR[,..]] "
		"[--uuid GPU-...[,..]] [--pci BUSID[,..]]\n"
		"                          [--kernel-ns NS] [--blocks-per-sm N] "
		"[--alloc-granularity SIZE] [--util-window-ms MS]\n"
		"                          [--ctx-overhead SIZE] [--timeslice-us US] "
		"[--switch-us US] [--sample-ms MS]\n"
		"                          [--sensors real|ideal] [--vendor nvidia|amd] "
		"[--arch GFX[,..]] [--force]\n"
		"       fakegpu-ctl reap [--state PATH]\n"
		"       fakegpu-ctl hold-lock SECONDS [--state PATH]\n");
}

static int create(int force)
{
	struct fg_create_params p;
	char path[4096], err[512];
	int exists;

	if (fg_state_path(path, sizeof(path), err, sizeof(err)) != 0 ||
	    fg_params_from_env(&p, err, sizeof(err)) != 0) {
		fprintf(stderr, "fakegpu: %s\n", err);
		return 2;
	}
	if (fg_state_create(path, &p, force, &exists, err, sizeof(err)) != 0) {
		if (exists)
			fprintf(stderr, "fakegpu: %s already exists; pass --force to replace it\n",
				path);
		else
			fprintf(stderr, "fakegpu: %s\n", err);
		return 1;
	}
	printf("%s\n", path);
	return 0;
}

static int hold_lock(unsigned seconds)
{
	struct fg_state *s;
	char err[512];

	s = fg_state_attach_vendor(FG_VENDOR_ANY, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "fakegpu: %s\n", err);
		return 1;
	}
	if (fg_lock(s))
		return 1;
	printf("locked\n");
	fflush(stdout);
	sleep(seconds);
	fg_unlock(s);
	return 0;
}

static int reap(void)
{
	struct fg_state *s;
	char err[512];

	s = fg_state_attach_vendor(FG_VENDOR_ANY, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "fakegpu: %s\n", err);
		return 1;
	}
	if (fg_lock(s)) {
		munmap(s, sizeof(*s));
		return 1;
	}
	fg_reap_dead(s);
	fg_unlock(s);
	munmap(s, sizeof(*s));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "mem", required_argument, NULL, 'm' },
		{ "sms", required_argument, NULL, 'S' },
		{ "name", required_argument, NULL, 'N' },
		{ "cc", required_argument, NULL, 'c' },
		{ "uuid", required_argument, NULL, 'u' },
		{ "pci", required_argument, NULL, 'p' },
		{ "kernel-ns", required_argument, NULL, 'k' },
		{ "blocks-per-sm", required_argument, NULL, 'b' },
		{ "alloc-granularity", required_argument, NULL, 'g' },
		{ "util-window-ms", required_argument, NULL, 'w' },
		{ "ctx-overhead", required_argument, NULL, 'o' },
		{ "timeslice-us", required_argument, NULL, 'T' },
		{ "switch-us", required_argument, NULL, 'W' },
		{ "sample-ms", required_argument, NULL, 'P' },
		{ "sensors", required_argument, NULL, 'R' },
		{ "vendor", required_argument, NULL, 'V' },
		{ "arch", required_argument, NULL, 'A' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct {
		int opt;
		const char *var;
	} vars[] = {
		{ 's', "FAKEGPU_STATE" }, { 'n', "FAKEGPU_COUNT" }, { 'm', "FAKEGPU_MEM" },
		{ 'S', "FAKEGPU_SMS" }, { 'N', "FAKEGPU_NAME" }, { 'c', "FAKEGPU_CC" },
		{ 'u', "FAKEGPU_UUIDS" }, { 'p', "FAKEGPU_PCI" }, { 'k', "FAKEGPU_KERNEL_NS" },
		{ 'b', "FAKEGPU_BLOCKS_PER_SM" }, { 'g', "FAKEGPU_ALLOC_GRANULARITY" },
		{ 'w', "FAKEGPU_UTIL_WINDOW_MS" }, { 'o', "FAKEGPU_CTX_OVERHEAD" },
		{ 'T', "FAKEGPU_TIMESLICE_US" }, { 'W', "FAKEGPU_SWITCH_US" },
		{ 'P', "FAKEGPU_SAMPLE_MS" }, { 'R', "FAKEGPU_SENSORS" },
		{ 'V', "FAKEGPU_VENDOR" }, { 'A', "FAKEGPU_ARCH" },
	};
	const char *cmd;
	int force = 0, o;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	optind = 2;
	if (!strcmp(cmd, "hold-lock")) {
		if (argc < 3 || atoi(argv[2]) <= 0) {
			usage(stderr);
			return 2;
		}
		optind = 3;
	}
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		size_t i;

		if (o == 'f') {
			force = 1;
			continue;
		}
		if (o == 'h') {
			usage(stdout);
			return 0;
		}
		for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
			if (vars[i].opt == o)
				break;
		if (i == sizeof(vars) / sizeof(vars[0])) {
			usage(stderr);
			return 2;
		}
		/* the options travel through the same parser as the variables */
		setenv(vars[i].var, optarg, 1);
	}
	if (optind != argc) {
		fprintf(stderr, "fakegpu: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!strcmp(cmd, "create"))
		return create(force);
	if (!strcmp(cmd, "reap"))
		return reap();
	if (!strcmp(cmd, "hold-lock"))
		return hold_lock((unsigned)atoi(argv[2]));
	fprintf(stderr, "fakegpu: unknown command '%s' (create, reap)\n", cmd);
	return 2;
}
