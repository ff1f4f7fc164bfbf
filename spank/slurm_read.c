/* vgpu-slurm-read: the cluster controller's reads of slurmctld, straight from libslurm.
 *
 * `squeue` and `sinfo` spend most of their time on what the controller throws away: squeue
 * sorts and formats every job of the cluster (9-11 ms per 1,000 jobs on the loopback
 * cluster), the controller then splits megabytes of lines in Python, and `sinfo --json` of
 * 10,000 nodes prints 12 MB. This program makes the same RPCs (slurm_load_jobs and
 * slurm_load_node, SHOW_ALL as `squeue -a`) and prints only what the controller uses.
 *
 * `vgpu-slurm-read jobs`:
 *   V|1|jobs|<jobs in the table>
 *   R|<job id>|<partition>|<qos>|<uid>|<start time, epoch>|<node list>|<tres per node>
 *       one line per running job that holds vgpu
 *   P|<job id>|<partitions>|<qos>|<tres per node>|<jobs>|<job ids>
 *       pending vgpu jobs that wait for capacity, in scheduling order (priority, then job id),
 *       one line per distinct (partitions, qos, request): the first such job, how many there
 *       are and all their ids in that order (comma-separated). The controller only asks
 *       "which is the first waiting job that fits this node" (policies/service/controller.py
 *       WaitingIndex), and a later job with the same partitions, QOS and request is never that
 *       job; the ids let it drop the ones that started or left between two reads (`states`).
 * `vgpu-slurm-read states` (Slurm 24.05 or newer), on stdin one token per job: its id and the
 * state the controller believes it in, R (running) or P (pending), e.g. `1234R 1235P`:
 *   V|1|states|<jobs asked>
 *   S|<job id>|<R, P, or - (neither: ended, left the queue, held in another state)>
 *       only the asked jobs whose state is not the believed one (one REQUEST_JOB_STATE RPC:
 *       ids and states only). Exit 3 on an older Slurm, which has no such RPC.
 * `vgpu-slurm-read held <seconds>`, on stdin the ids of jobs the controller steered (may be
 * none), white space between them:
 *   V|2|held|<jobs in the table>
 *   H|<job id>|<submit time>|<eligible time>|<reason>|<requested nodes>|<features>|<nodes>|
 *       <CPUs>|<CPUs per node>|<requested TRES>|<tres per node>|<partitions>
 *       one line per pending job (not an array task, not a heterogeneous component) that
 *       waits for a begin time at most <seconds> after its submission (reason BeginTime, as
 *       job_submit.lua holds jobs for the placement steering), or whose id is on stdin
 *       (reason BeginTime or -); times in seconds since the epoch. The controller's
 *       steering reads these instead of every pending job's squeue line
 *       (policies/slurm/steering_reads.py keeps the same filters for both). <CPUs> is
 *       the job's whole count (squeue's NumCPUs: `-n 4` is 4, where the per-node minimum
 *       says 1), <CPUs per node> that minimum (MinCpus: `--mincpus=6` is 6 where NumCPUs
 *       says 1), <requested TRES> what slurmctld computed for the request (squeue's
 *       tres-alloc of a pending job: `cpu=4,mem=400M,node=1,...`), whose mem is the job's
 *       memory with --mem-per-cpu already multiplied out and the node's whole memory where
 *       the job names none; format 1 printed the per-node minimum and MinMemory (per CPU
 *       for --mem-per-cpu), which under-asked.
 * `vgpu-slurm-read nodes`:
 *   V|1|nodes|<nodes in the table>
 *   N|<name>|<state>|<gres>|<gres used>|<weight>|<partitions>
 *       every node; state is the base state in lower case with its flags (+drain, +fail,
 *       +not_responding), as the controller reads sinfo's
 *
 * "Waits for capacity" is the complement of the reasons in slurm_client.py's
 * _NOT_WAITING_FOR_CAPACITY (held, dependency, bad constraints, invalid QOS or account).
 * Exit 0 with the lines above; 1 (cannot read), 2 (bad usage) or 3 (not in this Slurm release)
 * with one `vgpu: ` line on stderr. Runs as any user that may read the tables (the controller: root or SlurmUser). */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "slurm_compat.h"

struct pending_key {
	const slurm_job_info_t *first;
	unsigned long count;
	size_t head, tail; /* the key's jobs, chained through next[] in scheduling order */
};

static const char *str(const char *s)
{
	return s ? s : "";
}

static int holds_vgpu(const char *tres_per_node)
{
	return tres_per_node && strstr(tres_per_node, "vgpu");
}

static int waits_for_capacity(uint32_t reason)
{
	switch (reason) {
	case WAIT_HELD:
	case WAIT_HELD_USER:
	case WAIT_DEPENDENCY:
	case WAIT_DEP_INVALID:
	case FAIL_BAD_CONSTRAINTS:
	case FAIL_QOS:
	case FAIL_ACCOUNT:
		return 0;
	default:
		return 1;
	}
}

static int by_scheduling_order(const void *a, const void *b)
{
	const slurm_job_info_t *x = *(const slurm_job_info_t *const *)a;
	const slurm_job_info_t *y = *(const slurm_job_info_t *const *)b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->job_id < y->job_id ? -1 : x->job_id > y->job_id;
}

static int null_safe_cmp(const char *a, const char *b)
{
	return strcmp(str(a), str(b));
}

static int same_key(const slurm_job_info_t *a, const slurm_job_info_t *b)
{
	return !null_safe_cmp(a->partition, b->partition) && !null_safe_cmp(a->qos, b->qos) &&
	       !null_safe_cmp(a->tres_per_node, b->tres_per_node);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	for (s = str(s); *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (h ^ '|') * 1099511628211ULL;
}

static uint64_t key_hash(const slurm_job_info_t *j)
{
	return hash_str(hash_str(hash_str(14695981039346656037ULL, j->partition), j->qos),
			j->tres_per_node);
}

/* Pending jobs in scheduling order, folded into their distinct keys (an open-addressing table
 * of twice the jobs' size, so a probe sequence always ends), printed in first-seen order with
 * each key's job ids chained through next[]. */
static int print_pending(const slurm_job_info_t **jobs, size_t n)
{
	int rv = -1;
	size_t slots = 2 * n + 1, keys = 0;
	struct pending_key *table = calloc(slots, sizeof(*table));
	size_t *order = calloc(n + 1, sizeof(*order));
	size_t *next = calloc(n + 1, sizeof(*next));

	if (!table || !order || !next) {
		fprintf(stderr, "vgpu: vgpu-slurm-read: out of memory for %zu pending jobs\n", n);
		goto fail;
	}
	qsort(jobs, n, sizeof(*jobs), by_scheduling_order);
	for (size_t i = 0; i < n; i++) {
		size_t s = key_hash(jobs[i]) % slots;

		while (table[s].first && !same_key(table[s].first, jobs[i]))
			s = (s + 1) % slots;
		if (!table[s].first) {
			table[s].first = jobs[i];
			table[s].head = i;
			order[keys++] = s;
		} else {
			next[table[s].tail] = i;
		}
		table[s].tail = i;
		next[i] = SIZE_MAX;
		table[s].count++;
	}
	for (size_t k = 0; k < keys; k++) {
		const struct pending_key *p = &table[order[k]];
		const char *sep = "";

		printf("P|%u|%s|%s|%s|%lu|", p->first->job_id, str(p->first->partition),
		       str(p->first->qos), str(p->first->tres_per_node), p->count);
		for (size_t i = p->head; i != SIZE_MAX; i = next[i]) {
			printf("%s%u", sep, jobs[i]->job_id);
			sep = ",";
		}
		putchar('\n');
	}
	rv = 0;
fail:
	free(table);
	free(order);
	free(next);
	return rv;
}

/* The whole job table (REQUEST_JOB_INFO, every partition, as `squeue -a`); 0 or -1 with one
 * `vgpu: ` line on stderr. */
static int load_job_table(job_info_msg_t **msg)
{
	if (slurm_load_jobs((time_t)0, msg, SHOW_ALL) == SLURM_SUCCESS)
		return 0;
	fprintf(stderr, "vgpu: vgpu-slurm-read: cannot read the job table from slurmctld: %s\n",
		slurm_strerror(vgpu_slurm_errno()));
	return -1;
}

static int print_jobs(void)
{
	int rv = -1;
	job_info_msg_t *msg = NULL;
	const slurm_job_info_t **pending = NULL;
	size_t n_pending = 0;

	if (load_job_table(&msg))
		goto fail;
	pending = calloc(msg->record_count + 1, sizeof(*pending));
	if (!pending) {
		fprintf(stderr, "vgpu: vgpu-slurm-read: out of memory for %u jobs\n",
			msg->record_count);
		goto fail;
	}
	printf("V|1|jobs|%u\n", msg->record_count);
	for (uint32_t i = 0; i < msg->record_count; i++) {
		const slurm_job_info_t *j = &msg->job_array[i];
		uint32_t state = j->job_state & JOB_STATE_BASE;

		if (!holds_vgpu(j->tres_per_node))
			continue;
		if (state == JOB_RUNNING)
			printf("R|%u|%s|%s|%u|%lld|%s|%s\n", j->job_id, str(j->partition),
			       str(j->qos), j->user_id, (long long)j->start_time, str(j->nodes),
			       j->tres_per_node);
		else if (state == JOB_PENDING && waits_for_capacity(j->state_reason))
			pending[n_pending++] = j;
	}
	if (print_pending(pending, n_pending))
		goto fail;
	rv = 0;
fail:
	free(pending);
	slurm_free_job_info_msg(msg);
	return rv;
}

static int by_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Job ids on stdin, white space between them, into a sorted array (*ids; NULL when none). */
static int read_ids(uint32_t **ids, uint32_t *n, const char *mode)
{
	uint32_t cap = 0;
	unsigned long id;
	int got;

	*ids = NULL;
	*n = 0;
	while ((got = scanf("%lu", &id)) == 1) {
		if (id == 0 || id > UINT32_MAX) {
			fprintf(stderr, "vgpu: vgpu-slurm-read: %s: token %u on stdin is not a job "
					"id\n", mode, *n + 1);
			return -1;
		}
		if (*n == cap) {
			size_t more_cap = cap ? 2 * (size_t)cap : 256;
			uint32_t *more = realloc(*ids, more_cap * sizeof(*more));

			if (!more) {
				fprintf(stderr, "vgpu: vgpu-slurm-read: out of memory for %u job ids\n",
					*n);
				return -1;
			}
			*ids = more;
			cap = (uint32_t)more_cap;
		}
		(*ids)[(*n)++] = (uint32_t)id;
	}
	if (got != EOF || ferror(stdin)) {
		fprintf(stderr, "vgpu: vgpu-slurm-read: %s: stdin must hold job ids separated by "
				"white space; token %u is not one\n", mode, *n + 1);
		return -1;
	}
	if (*n)
		qsort(*ids, *n, sizeof(**ids), by_u32);
	return 0;
}

static int print_held(const char *max_wait_text)
{
	int rv = -1;
	job_info_msg_t *msg = NULL;
	uint32_t *asked = NULL, n_asked = 0;
	char *end = NULL;
	long max_wait = strtol(max_wait_text, &end, 10);

	if (!*max_wait_text || *end || max_wait < 1 || max_wait > 86400) {
		fprintf(stderr, "vgpu: vgpu-slurm-read: held: '%s' is not a number of seconds from "
				"1 to 86400 (the longest begin-time hold to report)\n", max_wait_text);
		return 2;
	}
	if (read_ids(&asked, &n_asked, "held"))
		goto fail;
	if (load_job_table(&msg))
		goto fail;
	printf("V|2|held|%u\n", msg->record_count);
	for (uint32_t i = 0; i < msg->record_count; i++) {
		const slurm_job_info_t *j = &msg->job_array[i];
		int begin = j->state_reason == WAIT_TIME;
		long long wait = (long long)j->eligible_time - (long long)j->submit_time;

		if ((j->job_state & JOB_STATE_BASE) != JOB_PENDING || j->array_job_id ||
		    j->het_job_id)
			continue;
		if (!(begin && wait > 0 && wait <= max_wait) &&
		    !(n_asked && bsearch(&j->job_id, asked, n_asked, sizeof(*asked), by_u32)))
			continue;
		printf("H|%u|%lld|%lld|%s|%s|%s|%u|%u|%u|%s|%s|%s\n", j->job_id,
		       (long long)j->submit_time, (long long)j->eligible_time,
		       begin ? "BeginTime" : "-", str(j->req_nodes), str(j->features),
		       j->num_nodes, j->num_cpus, (unsigned)j->pn_min_cpus, str(j->tres_req_str),
		       str(j->tres_per_node), str(j->partition));
	}
	rv = 0;
fail:
	free(asked);
	slurm_free_job_info_msg(msg);
	return rv;
}

static const char *node_base_state(uint32_t state)
{
	switch (state & NODE_STATE_BASE) {
	case NODE_STATE_DOWN:
		return "down";
	case NODE_STATE_IDLE:
		return "idle";
	case NODE_STATE_ALLOCATED:
		return "allocated";
	case NODE_STATE_ERROR:
		return "error";
	case NODE_STATE_MIXED:
		return "mixed";
	case NODE_STATE_FUTURE:
		return "future";
	default:
		return "unknown";
	}
}

static int in_partition(const partition_info_t *part, uint32_t node)
{
	for (const int32_t *r = part->node_inx; r && r[0] >= 0; r += 2)
		if ((int64_t)node >= r[0] && (int64_t)node <= r[1])
			return 1;
	return 0;
}

/* A node's partitions: from the partition table's node index ranges (as sinfo does), which
 * every release fills, where node_info_t.partitions is empty on some (22.05). */
static void print_partitions(const partition_info_msg_t *parts, uint32_t node)
{
	const char *sep = "";

	for (uint32_t p = 0; p < parts->record_count; p++) {
		if (in_partition(&parts->partition_array[p], node)) {
			printf("%s%s", sep, str(parts->partition_array[p].name));
			sep = ",";
		}
	}
}

static int print_nodes(void)
{
	int rv = -1;
	node_info_msg_t *msg = NULL;
	partition_info_msg_t *parts = NULL;

	/* SHOW_DETAIL: the GRES in use (gres_used) is left out without it */
	if (slurm_load_node((time_t)0, &msg, SHOW_ALL | SHOW_DETAIL) != SLURM_SUCCESS ||
	    slurm_load_partitions((time_t)0, &parts, SHOW_ALL) != SLURM_SUCCESS) {
		fprintf(stderr, "vgpu: vgpu-slurm-read: cannot read the node and partition tables "
				"from slurmctld: %s\n", slurm_strerror(vgpu_slurm_errno()));
		goto fail;
	}
	printf("V|1|nodes|%u\n", msg->record_count);
	for (uint32_t i = 0; i < msg->record_count; i++) {
		const node_info_t *n = &msg->node_array[i];

		if (!n->name)
			continue; /* a slot of a node that is not configured (FUTURE, cloud) */
		printf("N|%s|%s%s%s%s|%s|%s|%u|", n->name, node_base_state(n->node_state),
		       n->node_state & NODE_STATE_DRAIN ? "+drain" : "",
		       n->node_state & NODE_STATE_FAIL ? "+fail" : "",
		       n->node_state & NODE_STATE_NO_RESPOND ? "+not_responding" : "",
		       str(n->gres), str(n->gres_used), n->weight);
		print_partitions(parts, i);
		putchar('\n');
	}
	rv = 0;
fail:
	slurm_free_partition_info_msg(parts);
	slurm_free_node_info_msg(msg);
	return rv;
}

/* What the controller believes of each job it asks about, and what slurmctld says. */
struct asked_job {
	uint32_t id;
	char believed; /* 'R' or 'P' */
	char now;      /* 'R', 'P', or '-' (neither, or gone): filled in from the answer */
};

static int by_id(const void *a, const void *b)
{
	const struct asked_job *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

struct asked {
	struct asked_job *jobs;
	uint32_t n;
};

static void note_state(uint32_t job_id, uint32_t state, void *arg)
{
	const struct asked *asked = arg;
	struct asked_job key = { .id = job_id };
	struct asked_job *j = bsearch(&key, asked->jobs, asked->n, sizeof(key), by_id);

	if (!j)
		return; /* not asked (a job array's other tasks) */
	if ((state & JOB_STATE_BASE) == JOB_RUNNING)
		j->now = 'R';
	else if ((state & JOB_STATE_BASE) == JOB_PENDING)
		j->now = 'P';
}

/* stdin: one token per job, its id and the state the controller believes it in ("1234R",
 * "1235P"); one REQUEST_JOB_STATE for them all; printed: only the jobs whose state is not the
 * believed one, so the output scales with what changed, not with the queue. */
static int print_states(void)
{
	int rv = -1;
	struct asked asked = { NULL, 0 };
	uint32_t cap = 0, *ids = NULL;
	unsigned long id;
	char believed;
	int got;

	if (!VGPU_HAVE_JOB_STATE_RPC) {
		fprintf(stderr, "vgpu: vgpu-slurm-read: states needs Slurm 24.05 or newer "
				"(REQUEST_JOB_STATE); this one is %d.%02d\n",
			SLURM_VERSION_MAJOR(SLURM_VERSION_NUMBER),
			SLURM_VERSION_MINOR(SLURM_VERSION_NUMBER));
		return 3;
	}
	while ((got = scanf("%lu%c", &id, &believed)) == 2) {
		if (id == 0 || id > UINT32_MAX || (believed != 'R' && believed != 'P')) {
			fprintf(stderr, "vgpu: vgpu-slurm-read: states: token %u is not a job id "
					"followed by R or P (e.g. 1234R)\n", asked.n + 1);
			goto fail;
		}
		if (asked.n == cap) {
			size_t more_cap = cap ? 2 * (size_t)cap : 1024;
			struct asked_job *more = realloc(asked.jobs, more_cap * sizeof(*more));

			if (!more) {
				fprintf(stderr, "vgpu: vgpu-slurm-read: out of memory for %u jobs\n",
					asked.n);
				goto fail;
			}
			asked.jobs = more;
			cap = (uint32_t)more_cap;
		}
		asked.jobs[asked.n++] = (struct asked_job){ (uint32_t)id, believed, '-' };
	}
	if (got != EOF || ferror(stdin)) {
		fprintf(stderr, "vgpu: vgpu-slurm-read: states: stdin must hold job ids each followed "
				"by R or P (e.g. 1234R), separated by white space; token %u is not "
				"one\n", asked.n + 1);
		goto fail;
	}
	qsort(asked.jobs, asked.n, sizeof(*asked.jobs), by_id);
	ids = calloc(asked.n ? asked.n : 1, sizeof(*ids));
	if (!ids) {
		fprintf(stderr, "vgpu: vgpu-slurm-read: out of memory for %u jobs\n", asked.n);
		goto fail;
	}
	for (uint32_t i = 0; i < asked.n; i++)
		ids[i] = asked.jobs[i].id;
	if (vgpu_job_states(ids, asked.n, note_state, &asked)) {
		fprintf(stderr, "vgpu: vgpu-slurm-read: cannot read job states from slurmctld: "
				"%s\n", slurm_strerror(vgpu_slurm_errno()));
		goto fail;
	}
	printf("V|1|states|%u\n", asked.n);
	for (uint32_t i = 0; i < asked.n; i++)
		if (asked.jobs[i].now != asked.jobs[i].believed)
			printf("S|%u|%c\n", asked.jobs[i].id, asked.jobs[i].now);
	rv = 0;
fail:
	free(ids);
	free(asked.jobs);
	return rv;
}

int main(int argc, char **argv)
{
	int rv;
	int held = argc == 3 && !strcmp(argv[1], "held");

	if (!held && (argc != 2 || (strcmp(argv[1], "jobs") && strcmp(argv[1], "nodes") &&
				    strcmp(argv[1], "states")))) {
		fprintf(stderr, "vgpu: usage: vgpu-slurm-read jobs|nodes|states|held SECONDS (the "
				"vgpu jobs, the nodes, the states of the job ids on stdin, or the jobs "
				"held for placement and those on stdin, of the cluster in SLURM_CONF, "
				"for the cluster controller)\n");
		return 2;
	}
	vgpu_slurm_api_init();
	if (held) {
		rv = print_held(argv[2]);
		if (rv == 2)
			return 2;
	} else if (!strcmp(argv[1], "states")) {
		rv = print_states();
		if (rv == 3)
			return 3;
	} else {
		rv = strcmp(argv[1], "jobs") ? print_nodes() : print_jobs();
	}
	if (fflush(stdout) == EOF || ferror(stdout)) {
		perror("vgpu: vgpu-slurm-read: writing the table");
		rv = -1;
	}
	return rv ? 1 : 0;
}
