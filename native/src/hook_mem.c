/*
 * Memory: the job's cap on every allocation path, accounted in the shared state.
 *
 * An allocation reserves its bytes in the shared state BEFORE the driver is called (check
 * and raise in one critical section under the robust mutex: two processes cannot both pass)
 * and gives them back if the driver fails. A free gives them back after the driver freed.
 * This process remembers what it allocated (pointer, VMM handle or array -> bytes, gpu) in a
 * local table, so frees know what to return. Dead processes' reservations are reclaimed by
 * whoever finds them: a failed reservation, the monitor thread, a new process.
 *
 * Vendor-neutral: the fronts (hook_cuda.c, hook_hip.c) call this core around their API's
 * allocation and free calls and map its results to their errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hook.h"

#define LOCK_TIMEOUT_S 2
#define RECLAIM_INTERVAL_NS 200000000ull
#define PITCH_ALIGN 512u
#define ALLOC_GRANULARITY vgpu_alloc_granularity


/* ------------------------------------------------------------------ the shared state */

static void repair_locked(struct vgpu_state *s)
{
	/* A process died inside the critical section: the slots are authoritative. */
	for (uint32_t g = 0; g < VGPU_MAX_GPUS; g++) {
		uint64_t sum = 0;
		for (uint32_t i = 0; i < VGPU_MAX_PROCS; i++)
			if (atomic_load_explicit(&s->proc[i].pid, memory_order_relaxed) != 0)
				sum += s->proc[i].used_bytes[g];
		atomic_store(&s->gpu[g].used_bytes, sum);
	}
	atomic_fetch_add(&s->repairs, 1);
}

int vgpu_state_lock(struct vgpu_state *s)
{
	static int warned;
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += LOCK_TIMEOUT_S;
	int r = pthread_mutex_timedlock(&s->lock.mutex, &deadline);
	if (r == EOWNERDEAD) {
		repair_locked(s);
		pthread_mutex_consistent(&s->lock.mutex);
		return 0;
	}
	if (r == 0)
		return 0;
	if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		vgpu_log("job state mutex not acquired in %d s (%s); refusing allocations until it is",
			 LOCK_TIMEOUT_S, strerror(r));
	return -1;
}

void vgpu_state_unlock(struct vgpu_state *s)
{
	pthread_mutex_unlock(&s->lock.mutex);
}

static void sweep_locked(struct vgpu_state *s)
{
	for (uint32_t i = 0; i < VGPU_MAX_PROCS; i++) {
		struct vgpu_state_proc *p = &s->proc[i];
		int32_t pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
		if (pid == 0 || (pid == vgpu_rt.pid && (int)i == vgpu_rt.slot))
			continue;
		if (vgpu_proc_alive(pid, p->start_time))
			continue;
		for (uint32_t g = 0; g < VGPU_MAX_GPUS; g++) {
			uint64_t held = p->used_bytes[g];
			uint64_t used = atomic_load(&s->gpu[g].used_bytes);
			atomic_store(&s->gpu[g].used_bytes, used > held ? used - held : 0);
		}
		memset(p->used_bytes, 0, sizeof p->used_bytes);
		memset(p->busy_ns, 0, sizeof p->busy_ns);
		p->start_time = 0;
		atomic_store(&p->pid, 0);
	}
	atomic_store(&s->last_reclaim_ns, vgpu_now_ns());
}

void vgpu_reclaim_dead(int force)
{
	struct vgpu_state *s = vgpu_rt.state;
	if (vgpu_rt.mode != VGPU_MODE_ENFORCE || !s)
		return;
	uint64_t last = atomic_load_explicit(&s->last_reclaim_ns, memory_order_relaxed);
	if (!force && vgpu_now_ns() - last < RECLAIM_INTERVAL_NS)
		return;
	if (vgpu_state_lock(s) != 0)
		return;
	sweep_locked(s);
	vgpu_state_unlock(s);
}

/* Is our slot still ours (a misjudged sweep could have freed it)? Lock held. */
static int slot_valid_locked(struct vgpu_state *s)
{
	int slot = vgpu_rt.slot;
	return slot >= 0 && (uint32_t)slot < VGPU_MAX_PROCS &&
	       atomic_load(&s->proc[slot].pid) == vgpu_rt.pid &&
	       s->proc[slot].start_time == vgpu_rt.start_time;
}

static int register_locked(struct vgpu_state *s)
{
	if (slot_valid_locked(s))
		return vgpu_rt.slot;
	sweep_locked(s); /* a new process also gives back what dead ones held */
	for (uint32_t i = 0; i < VGPU_MAX_PROCS; i++) {
		struct vgpu_state_proc *p = &s->proc[i];
		if (atomic_load(&p->pid) != 0)
			continue;
		memset(p->used_bytes, 0, sizeof p->used_bytes);
		memset(p->busy_ns, 0, sizeof p->busy_ns);
		p->start_time = vgpu_rt.start_time;
		p->flags = 0;
		atomic_store(&p->pid, vgpu_rt.pid);
		vgpu_rt.slot = (int)i;
		return (int)i;
	}
	vgpu_log("job state: all %u process slots in use; this process may not allocate",
		 VGPU_MAX_PROCS);
	return -1;
}

int vgpu_register_process(void)
{
	struct vgpu_state *s = vgpu_rt.state;
	if (vgpu_rt.mode != VGPU_MODE_ENFORCE || !s)
		return -1;
	if (vgpu_state_lock(s) != 0)
		return -1;
	int slot = register_locked(s);
	vgpu_state_unlock(s);
	return slot;
}

static uint64_t round_up(uint64_t bytes, uint64_t unit)
{
	if (bytes > UINT64_MAX - unit)
		return UINT64_MAX;
	return (bytes + unit - 1) / unit * unit;
}

/* Reserve bytes on job gpu g. 0: reserved; -1: over the cap (or state unusable). */
static int reserve(int g, uint64_t bytes)
{
	struct vgpu_state *s = vgpu_rt.state;
	struct vgpu_gpu_limit lim;
	if (vgpu_limits_read((uint32_t)g, &lim, NULL) != 0 || vgpu_state_lock(s) != 0)
		return -1;
	int rv = -1;
	if (register_locked(s) < 0)
		goto out;
	struct vgpu_state_gpu *sg = &s->gpu[g];
	for (int attempt = 0; attempt < 2; attempt++) {
		uint64_t used = atomic_load(&sg->used_bytes);
		if (bytes <= lim.memory_limit_bytes && used <= lim.memory_limit_bytes - bytes) {
			atomic_store(&sg->used_bytes, used + bytes);
			s->proc[vgpu_rt.slot].used_bytes[g] += bytes;
			if (used + bytes > atomic_load(&sg->peak_bytes))
				atomic_store(&sg->peak_bytes, used + bytes);
			rv = 0;
			goto out;
		}
		if (attempt == 0)
			sweep_locked(s); /* a dead process may still hold what we need */
	}
	atomic_fetch_add(&sg->oom_denials, 1);
out:
	vgpu_state_unlock(s);
	return rv;
}

static void release(int g, uint64_t bytes)
{
	struct vgpu_state *s = vgpu_rt.state;
	if (vgpu_state_lock(s) != 0)
		return; /* the reservation stays: conservative, never over the cap */
	if (slot_valid_locked(s)) {
		uint64_t *mine = &s->proc[vgpu_rt.slot].used_bytes[g];
		uint64_t give = bytes < *mine ? bytes : *mine;
		*mine -= give;
		uint64_t used = atomic_load(&s->gpu[g].used_bytes);
		atomic_store(&s->gpu[g].used_bytes, used > give ? used - give : 0);
	}
	vgpu_state_unlock(s);
}

/* ------------------------------------------------------------------ held beyond allocations
 *
 * What this process holds on a job gpu besides its allocations: its CUDA context and the
 * driver's own allocations (about 0.5 GiB per process on an H200), and memory freed into a
 * stream-ordered pool that the pool keeps (up to its release threshold). It is charged to the
 * job like an allocation but never refused (it is already on the device): a charge that takes
 * the job over its cap makes allocations fail until it comes down. The amount is NVML's
 * per-process used memory (what the driver says the process holds) minus what the hook
 * charged for allocations, measured at the process's first allocation on the gpu and every
 * 200 ms by the monitor thread. Memory freed with cuMemFreeAsync stays charged (as pool
 * memory) at once, and is given back when NVML shows that the pool let it go; a later pool
 * allocation is served from that charge first. */

static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
/* Allocations and frees of this process under way, and completed: the reconciliation lowers
 * a charge only from a measurement no operation overlapped (an allocation reserved but not yet
 * made, or freed but not yet returned, would make NVML and the hook disagree for a moment). */
static _Atomic int ops_inflight;
static _Atomic unsigned long ops_epoch;

static void op_begin(void)
{
	atomic_fetch_add(&ops_inflight, 1);
}

static void op_end(void)
{
	atomic_fetch_add(&ops_epoch, 1);
	atomic_fetch_sub(&ops_inflight, 1);
}
static uint64_t held_other[VGPU_MAX_GPUS]; /* context and driver */
static uint64_t held_pool[VGPU_MAX_GPUS];  /* freed into pools, kept by them */
static int held_measured[VGPU_MAX_GPUS];

/* Raise (delta > 0, never refused) or lower this process's charge on gpu g. */
static void charge_held(int g, int64_t delta)
{
	struct vgpu_state *s = vgpu_rt.state;
	if (!delta || vgpu_state_lock(s) != 0)
		return;
	if (register_locked(s) >= 0) {
		struct vgpu_state_gpu *sg = &s->gpu[g];
		uint64_t *mine = &s->proc[vgpu_rt.slot].used_bytes[g];
		uint64_t used = atomic_load(&sg->used_bytes);
		if (delta > 0) {
			*mine += (uint64_t)delta;
			atomic_store(&sg->used_bytes, used + (uint64_t)delta);
			if (used + (uint64_t)delta > atomic_load(&sg->peak_bytes))
				atomic_store(&sg->peak_bytes, used + (uint64_t)delta);
		} else {
			uint64_t give = (uint64_t)(-delta) < *mine ? (uint64_t)(-delta) : *mine;
			*mine -= give;
			atomic_store(&sg->used_bytes, used > give ? used - give : 0);
		}
	}
	vgpu_state_unlock(s);
}

static void reconcile_gpu(int g)
{
	struct vgpu_state *s = vgpu_rt.state;
	uint64_t nv;
	unsigned long epoch = atomic_load(&ops_epoch);
	int quiet = atomic_load(&ops_inflight) == 0;
	if (vgpu_process_used((uint32_t)g, &nv) != 0)
		return;
	quiet = quiet && atomic_load(&ops_inflight) == 0 && atomic_load(&ops_epoch) == epoch;
	pthread_mutex_lock(&held_mu);
	held_measured[g] = 1;
	uint64_t mine = 0;
	int slot = vgpu_rt.slot;
	if (slot >= 0 && (uint32_t)slot < VGPU_MAX_PROCS)
		mine = __atomic_load_n(&s->proc[slot].used_bytes[g], __ATOMIC_RELAXED);
	uint64_t held = held_other[g] + held_pool[g];
	uint64_t allocs = mine > held ? mine - held : 0;
	uint64_t target = nv > allocs ? nv - allocs : 0;
	if (!quiet && target < held)
		target = held; /* an operation overlapped: only raise, never lower, on it */
	uint64_t pool = held_pool[g] < target ? held_pool[g] : target;
	charge_held(g, (int64_t)target - (int64_t)held);
	held_pool[g] = pool;
	held_other[g] = target - pool;
	pthread_mutex_unlock(&held_mu);
}

/* ------------------------------------------------------------------ contexts
 *
 * A context costs device memory (about 0.5 GiB on an H200) the moment the driver makes it,
 * before any allocation. The job's first context is measured right after the driver made it
 * (NVML or ROCm SMI, as above) and its size kept in the job's state (ctx_bytes); every later
 * context of the job reserves that much before the driver makes it, and fails with
 * out-of-memory when it does not fit, as a full GPU answers. While the first one is being
 * measured, other processes wait for the figure (at most 2 s). The fronts say when a context
 * is made: CUDA at cuDevicePrimaryCtxRetain, HIP at the first hooked call on a device. */

static int ctx_made[VGPU_MAX_GPUS];

int vgpu_ctx_needed(int g)
{
	return g >= 0 && (uint32_t)g < vgpu_rt.ngpus && vgpu_rt.mode == VGPU_MODE_ENFORCE &&
	       vgpu_rt.state && !__atomic_load_n(&ctx_made[g], __ATOMIC_ACQUIRE);
}

int vgpu_ctx_begin(int g, struct vgpu_ctx_token *t)
{
	t->g = -1;
	t->measurer = 0;
	t->reserved = 0;
	if (!vgpu_ctx_needed(g))
		return VGPU_OK;
	t->g = g;
	struct vgpu_state_gpu *sg = &vgpu_rt.state->gpu[g];
	for (uint64_t t0 = vgpu_now_ns(); vgpu_now_ns() - t0 < 2000000000ull;) {
		uint64_t known = atomic_load(&sg->ctx_bytes);
		if (known) {
			t->reserved = known - 1;
			if (t->reserved && reserve(g, t->reserved) != 0) {
				t->g = -1;
				return VGPU_ENOMEM;
			}
			break;
		}
		int32_t cur = atomic_load(&sg->ctx_measurer);
		if ((cur == 0 || !vgpu_proc_alive(cur, 0)) &&
		    atomic_compare_exchange_strong(&sg->ctx_measurer, &cur, (int32_t)vgpu_rt.pid)) {
			t->measurer = 1;
			break;
		}
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	return VGPU_OK;
}

void vgpu_ctx_end(struct vgpu_ctx_token *t, int made)
{
	int g = t->g;
	if (g < 0)
		return;
	struct vgpu_state_gpu *sg = &vgpu_rt.state->gpu[g];
	if (!made) {
		if (t->reserved)
			release(g, t->reserved);
	} else {
		__atomic_store_n(&ctx_made[g], 1, __ATOMIC_RELEASE);
		pthread_mutex_lock(&held_mu);
		held_other[g] += t->reserved; /* the reservation is now the context's */
		pthread_mutex_unlock(&held_mu);
		if (vgpu_register_process() >= 0)
			reconcile_gpu(g);
		if (t->measurer) {
			pthread_mutex_lock(&held_mu);
			uint64_t size = held_other[g];
			pthread_mutex_unlock(&held_mu);
			atomic_store(&sg->ctx_bytes, size + 1);
		}
	}
	if (t->measurer) {
		int32_t me = (int32_t)vgpu_rt.pid;
		atomic_compare_exchange_strong(&sg->ctx_measurer, &me, 0);
	}
	t->g = -1;
}

void vgpu_mem_reconcile(void)
{
	if (vgpu_rt.mode != VGPU_MODE_ENFORCE || !vgpu_rt.state || vgpu_rt.slot < 0)
		return;
	for (uint32_t g = 0; g < vgpu_rt.ngpus; g++)
		reconcile_gpu((int)g);
}

/* ------------------------------------------------------------------ local allocation table */

struct alloc_entry {
	uint64_t key;
	uint64_t bytes;
	int32_t gpu;
	uint8_t kind; /* 0: empty, 0xff: deleted */
};

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct alloc_entry *table;
static size_t table_cap, table_fill; /* fill counts live and deleted entries */

static size_t slot_of(uint64_t key, uint8_t kind, size_t cap)
{
	uint64_t h = (key ^ ((uint64_t)kind << 56)) * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 20) & (cap - 1);
}

static int table_grow(void)
{
	size_t cap = table_cap ? table_cap * 2 : 1024;
	struct alloc_entry *t = calloc(cap, sizeof *t);
	if (!t)
		return -1;
	size_t fill = 0;
	for (size_t i = 0; i < table_cap; i++) {
		struct alloc_entry *e = &table[i];
		if (e->kind == 0 || e->kind == 0xff)
			continue;
		size_t j = slot_of(e->key, e->kind, cap);
		while (t[j].kind)
			j = (j + 1) & (cap - 1);
		t[j] = *e;
		fill++;
	}
	free(table);
	table = t;
	table_cap = cap;
	table_fill = fill;
	return 0;
}

static int table_put(uint8_t kind, uint64_t key, uint64_t bytes, int gpu)
{
	int rv = -1;
	pthread_mutex_lock(&table_mu);
	if ((table_fill + 1) * 4 > table_cap * 3 && table_grow() != 0)
		goto out;
	size_t j = slot_of(key, kind, table_cap);
	while (table[j].kind && table[j].kind != 0xff)
		j = (j + 1) & (table_cap - 1);
	if (table[j].kind == 0)
		table_fill++;
	table[j] = (struct alloc_entry){key, bytes, gpu, kind};
	rv = 0;
out:
	pthread_mutex_unlock(&table_mu);
	return rv;
}

static int table_take(uint8_t kind, uint64_t key, uint64_t *bytes, int *gpu)
{
	int found = 0;
	pthread_mutex_lock(&table_mu);
	if (table_cap) {
		size_t j = slot_of(key, kind, table_cap);
		for (size_t n = 0; n < table_cap && table[j].kind; n++) {
			if (table[j].kind == kind && table[j].key == key) {
				*bytes = table[j].bytes;
				*gpu = table[j].gpu;
				table[j].kind = 0xff;
				found = 1;
				break;
			}
			j = (j + 1) & (table_cap - 1);
		}
	}
	pthread_mutex_unlock(&table_mu);
	return found;
}

void vgpu_mem_atfork_prepare(void)
{
	pthread_mutex_lock(&table_mu);
}

void vgpu_mem_atfork_parent(void)
{
	pthread_mutex_unlock(&table_mu);
}

void vgpu_mem_atfork_child(void)
{
	/* The parent's allocations are not the child's to free. */
	pthread_mutex_init(&table_mu, NULL);
	free(table);
	table = NULL;
	table_cap = table_fill = 0;
	/* nor is what the parent's context and pools hold: the child measures its own */
	pthread_mutex_init(&held_mu, NULL);
	memset(held_other, 0, sizeof held_other);
	memset(held_pool, 0, sizeof held_pool);
	memset(held_measured, 0, sizeof held_measured);
	memset(ctx_made, 0, sizeof ctx_made);
}

/* ------------------------------------------------------------------ the fronts' allocation core */

int vgpu_mem_mode(int *account)
{
	vgpu_ensure_init();
	*account = 0;
	switch (__atomic_load_n(&vgpu_rt.mode, __ATOMIC_ACQUIRE)) {
	case VGPU_MODE_ENFORCE:
		*account = 1;
		return VGPU_OK;
	case VGPU_MODE_DENY:
		return VGPU_ENOMEM;
	default:
		return VGPU_OK;
	}
}

int vgpu_mem_reserve(int gpu, uint64_t bytes, int *reserved_gpu)
{
	*reserved_gpu = -1;
	if (gpu < 0 || (uint32_t)gpu >= vgpu_rt.ngpus)
		return VGPU_ENOMEM;
	if (!__atomic_load_n(&held_measured[gpu], __ATOMIC_ACQUIRE)) {
		/* first allocation here: the context exists; charge what it holds first */
		if (vgpu_register_process() >= 0)
			reconcile_gpu(gpu);
		__atomic_store_n(&held_measured[gpu], 1, __ATOMIC_RELEASE);
	}
	op_begin(); /* ended by vgpu_mem_settle (or below, when refused) */
	if (reserve(gpu, round_up(bytes, ALLOC_GRANULARITY)) != 0) {
		op_end();
		return VGPU_ENOMEM;
	}
	*reserved_gpu = gpu;
	return VGPU_OK;
}

int vgpu_mem_reserve_pooled(int gpu, uint64_t bytes, int *reserved_gpu)
{
	uint64_t charge = round_up(bytes, ALLOC_GRANULARITY), take = 0;
	*reserved_gpu = -1;
	if (gpu < 0 || (uint32_t)gpu >= vgpu_rt.ngpus)
		return VGPU_ENOMEM;
	pthread_mutex_lock(&held_mu);
	take = held_pool[gpu] < charge ? held_pool[gpu] : charge;
	held_pool[gpu] -= take;
	pthread_mutex_unlock(&held_mu);
	if (take == charge) {
		op_begin(); /* ended by vgpu_mem_settle */
		*reserved_gpu = gpu;
		return VGPU_OK;
	}
	int r = vgpu_mem_reserve(gpu, charge - take, reserved_gpu);
	if (r != VGPU_OK && take) {
		pthread_mutex_lock(&held_mu);
		held_pool[gpu] += take;
		pthread_mutex_unlock(&held_mu);
	}
	return r;
}

void vgpu_mem_settle(int ok, int gpu, int kind, uint64_t key, uint64_t bytes)
{
	if (gpu < 0)
		return;
	uint64_t charged = round_up(bytes, ALLOC_GRANULARITY);
	if (!ok) {
		release(gpu, charged);
		op_end();
		return;
	}
	if (table_put((uint8_t)kind, key, charged, gpu) != 0)
		vgpu_log("out of host memory for the allocation table; %llu bytes stay reserved "
			 "until this process exits", (unsigned long long)charged);
	op_end();
}

int vgpu_mem_resize(int gpu, uint64_t old_bytes, uint64_t new_bytes)
{
	uint64_t charged = round_up(old_bytes, ALLOC_GRANULARITY);
	uint64_t needed = round_up(new_bytes, ALLOC_GRANULARITY);
	if (gpu < 0)
		return VGPU_OK;
	if (needed > charged) {
		if (reserve(gpu, needed - charged) != 0)
			return VGPU_ENOMEM;
	} else if (needed < charged) {
		release(gpu, charged - needed);
	}
	return VGPU_OK;
}

void vgpu_mem_abandon(int gpu, uint64_t bytes)
{
	if (gpu < 0)
		return;
	release(gpu, round_up(bytes, ALLOC_GRANULARITY));
	op_end();
}

void vgpu_mem_free_begin(void)
{
	vgpu_ensure_init();
	op_begin(); /* ended by vgpu_mem_freed / vgpu_mem_freed_pooled */
}

static void freed(int ok, int kind, uint64_t key)
{
	uint64_t bytes;
	int gpu;
	if (!ok || vgpu_rt.mode != VGPU_MODE_ENFORCE)
		return;
	if (table_take((uint8_t)kind, key, &bytes, &gpu) && gpu >= 0 &&
	    (uint32_t)gpu < vgpu_rt.ngpus)
		release(gpu, bytes);
}

void vgpu_mem_freed(int ok, int kind, uint64_t key)
{
	freed(ok, kind, key);
	op_end();
}

/* A pool whose release threshold is raised keeps freed memory on the device: it stays
 * charged until the device says the process no longer holds it. (With the default threshold
 * 0 the driver releases it at the next synchronization: returned at once.) */
void vgpu_mem_freed_pooled(int ok, uint64_t key, int keeps)
{
	uint64_t bytes;
	int gpu;
	if (ok && vgpu_rt.mode == VGPU_MODE_ENFORCE) {
		if (!keeps) {
			freed(ok, VGPU_KIND_PTR, key);
		} else if (table_take(VGPU_KIND_PTR, key, &bytes, &gpu) && gpu >= 0 &&
			   (uint32_t)gpu < vgpu_rt.ngpus) {
			pthread_mutex_lock(&held_mu);
			held_pool[gpu] += bytes;
			pthread_mutex_unlock(&held_mu);
		}
	}
	op_end();
}

/* ------------------------------------------------------------------ arrays */

static uint64_t element_bytes(int format)
{
	switch (format) {
	case 0x01: case 0x08: case 0xc0: case 0xc6: /* 8-bit */
		return 1;
	case 0x02: case 0x09: case 0x10: case 0xc1: case 0xc7: case 0xc3: case 0xc9:
		return 2;
	case 0x03: case 0x0a: case 0x20: case 0xc2: case 0xc8: case 0xc4: case 0xca: case 0x50:
		return 4;
	case 0xc5: case 0xcb:
		return 8;
	default: /* video and block-compressed formats: a safe upper bound */
		return 16;
	}
}

uint64_t vgpu_array_bytes(size_t w, size_t h, size_t d, int format, unsigned channels,
			  unsigned levels, int depth_shrinks)
{
	uint64_t total = 0, per = element_bytes(format) * (channels ? channels : 1);
	uint64_t W = w ? w : 1, H = h ? h : 1, D = d ? d : 1;
	for (unsigned l = 0; l < (levels ? levels : 1) && l < 64; l++) {
		uint64_t lw = W >> l ? W >> l : 1, lh = H >> l ? H >> l : 1;
		uint64_t ld = depth_shrinks ? (D >> l ? D >> l : 1) : D, n;
		if (__builtin_mul_overflow(lw, lh, &n) || __builtin_mul_overflow(n, ld, &n) ||
		    __builtin_mul_overflow(n, per, &n) || __builtin_add_overflow(total, n, &total))
			return UINT64_MAX;
	}
	return total;
}

/* ------------------------------------------------------------------ what the job is told */

void vgpu_slice_view(int g, uint64_t *cap, uint64_t *used)
{
	struct vgpu_gpu_limit lim;
	*cap = 0;
	*used = 0;
	if (g < 0 || vgpu_limits_read((uint32_t)g, &lim, NULL) != 0)
		return;
	*cap = lim.memory_limit_bytes;
	*used = atomic_load(&vgpu_rt.state->gpu[g].used_bytes);
}

int vgpu_mem_reporting(void)
{
	vgpu_ensure_init();
	int mode = __atomic_load_n(&vgpu_rt.mode, __ATOMIC_ACQUIRE);
	return mode == VGPU_MODE_ENFORCE || mode == VGPU_MODE_DENY;
}
