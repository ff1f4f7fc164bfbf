/*
 * fakegpu: the simulated machine's shared state file.
 *
 * One file per simulated machine (FAKEGPU_STATE), mapped MAP_SHARED by every process that
 * uses the fake libcuda or libnvidia-ml and by the tools. It holds the device configuration
 * (written once, at creation) and the live state: memory in use per device and per process,
 * and a per-device timeline of simulated kernel executions shared by all processes.
 *
 * All mutable fields are guarded by one robust process-shared mutex (a process killed while
 * holding it does not wedge the machine). The file is writable by every test user, so every
 * reader treats it as hostile: the header is validated on attach and every index taken from
 * the file is bounds-checked before use.
 */
#ifndef FG_STATE_H
#define FG_STATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define FG_STATE_MAGIC 0x3145544154534746ULL /* "FGSTATE1" as little-endian bytes */
#define FG_STATE_VERSION 2u
#define FG_MAX_DEVICES 16u
#define FG_MAX_PROCS 512u      /* (pid, device) pairs with memory or launches */
#define FG_RING_SIZE 32768u    /* kernel intervals remembered per device */
#define FG_NAME_LEN 96u
#define FG_UUID_LEN 16u
#define FG_BUSID_LEN 32u
/* Device vendors. A state file simulates GPUs of one vendor (fakegpu-ctl create --vendor,
 * FAKEGPU_VENDOR): the fake libcuda and NVML attach only to NVIDIA machines, the fake HIP
 * runtime and ROCm SMI only to AMD ones. Files made before vendors existed read as NVIDIA. */
#define FG_VENDOR_NVIDIA 0u
#define FG_VENDOR_AMD 1u
#define FG_VENDOR_ANY 0xffu /* tools: attach to a machine of any vendor */

/* What a device is; fixed once the state file exists. */
struct fg_device_config {
	char name[FG_NAME_LEN];
	unsigned char uuid[FG_UUID_LEN]; /* printed as GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx */
	uint64_t memory_bytes;
	uint32_t sms;
	uint32_t cc_major;
	uint32_t cc_minor;
	uint32_t pci_domain;
	uint32_t pci_bus;
	uint32_t pci_device;
	uint32_t pci_device_id;    /* (device << 16) | vendor, as NVML reports it */
	uint32_t pci_subsystem_id;
	/* Added in what was the structure's tail padding (its size and the layout version are
	 * unchanged; older files hold zeros here, i.e. NVIDIA). */
	uint8_t vendor;            /* FG_VENDOR_*, the same for every device of a file */
	uint8_t gfx_step;          /* AMD: gfx<cc_major><cc_minor><gfx_step, hex>: gfx90a = 9,0,10 */
	uint16_t reserved;
};
_Static_assert(sizeof(struct fg_device_config) == 160, "fg_device_config must keep its size");

/* One simulated kernel execution (or several back-to-back ones of the same process). */
struct fg_interval {
	uint64_t start_ns; /* CLOCK_MONOTONIC */
	uint64_t end_ns;
	uint64_t work_at_start; /* the process's completed work (ns) when the run started */
	int32_t pid;
	uint32_t launches;      /* runs merged into this interval */
};

struct fg_device_state {
	uint64_t used_bytes;
	uint64_t busy_until_ns;  /* the device's FIFO: the next kernel starts no earlier */
	uint64_t busy_total_ns;  /* simulated kernel time ever queued */
	uint64_t launches;
	uint64_t allocs;
	uint64_t frees;
	/* The time-slicing scheduler (fg_sched.c), advanced lazily to "now" under the lock. */
	uint64_t sim_ns;         /* simulated up to here */
	int32_t cur;             /* proc slot running (or last run), -1 none */
	uint32_t nactive;        /* processes with work queued or running */
	uint64_t run_start_ns;   /* start of the current process's run (time slice) */
	uint64_t switch_until_ns;/* a context switch occupies the device until then */
	uint64_t active_acc_ns;  /* time with any process active, before active_since_ns */
	uint64_t active_since_ns;
	uint64_t next_sample_ns; /* the driver's next utilization sample boundary */
	uint64_t sample_ns;      /* the latest sample's boundary (0: none yet) */
	uint64_t sample_prev_active;
	uint32_t sample_util;    /* percent, device-level, latest sample */
	uint32_t pad0;
	int64_t sample_rt_offset_us; /* wall clock - CLOCK_MONOTONIC when samples were taken */
	uint32_t ring_head;      /* next slot to write */
	uint32_t ring_count;     /* valid slots, <= FG_RING_SIZE */
	struct fg_interval ring[FG_RING_SIZE];
};

struct fg_proc {
	int32_t pid;             /* 0: free slot */
	uint32_t device;         /* physical index */
	uint64_t start_time;     /* /proc/<pid>/stat starttime: tells a reused pid apart */
	uint64_t used_bytes;
	uint64_t launches;
	uint64_t busy_ns;        /* kernel time ever queued */
	uint64_t enq_ns;         /* work queued (kernel ns), cumulative: a launch's ticket */
	uint64_t done_ns;        /* work completed, cumulative (<= enq_ns) */
	uint64_t active_acc_ns;  /* time with work queued or running, before active_since_ns */
	uint64_t active_since_ns;
	uint64_t sample_ns;      /* this process's latest utilization sample (0: none) */
	uint64_t sample_prev_active;
	uint32_t sample_util;    /* percent of the sample period with work queued or running */
	uint32_t sample_seen;    /* the latest sample saw activity */
	uint64_t sample_prev_done;
	uint32_t sample_run_util; /* percent of the sample period its kernels ran */
	uint32_t pad0;
};

struct fg_state {
	uint64_t magic;          /* FG_STATE_MAGIC, stored last at creation */
	uint32_t version;        /* FG_STATE_VERSION */
	uint32_t size;           /* sizeof(struct fg_state) */
	uint32_t device_count;
	uint32_t blocks_per_sm;  /* resident blocks per SM: one "wave" = sms * blocks_per_sm */
	uint64_t kernel_ns;      /* simulated time of one wave of an ordinary kernel */
	uint64_t alloc_granularity; /* device allocations are accounted rounded up to this */
	uint32_t util_window_ms; /* NVML utilization window */
	uint32_t ctx_overhead_mib; /* device memory each CUDA context takes (0: none) */
	uint64_t timeslice_ns;   /* a process's run before the device switches to another */
	uint64_t switch_ns;      /* device time lost to a preemptive context switch */
	uint32_t sample_ms;      /* NVML's driver-side utilization sample period */
	uint32_t ideal;          /* 1: idealized sensors (exact busy time over any window) */
	uint64_t created_unix_ns;
	pthread_mutex_t lock;    /* robust, process-shared */
	char lock_pad[64 - sizeof(pthread_mutex_t) % 64];
	struct fg_device_config config[FG_MAX_DEVICES];
	struct fg_proc procs[FG_MAX_PROCS];
	struct fg_device_state dev[FG_MAX_DEVICES];
};

/* Parameters for a new state file (from fakegpu-ctl options or FAKEGPU_* variables). */
struct fg_create_params {
	uint32_t device_count;
	uint32_t blocks_per_sm;
	uint64_t kernel_ns;
	uint64_t alloc_granularity;
	uint32_t util_window_ms;
	uint32_t ctx_overhead_mib;
	uint64_t timeslice_ns;
	uint64_t switch_ns;
	uint32_t sample_ms;
	uint32_t ideal;
	struct fg_device_config config[FG_MAX_DEVICES];
};

/* Resolve FAKEGPU_STATE (default /dev/shm/fakegpu-<uid>.state), expanding %n to
 * $SLURMD_NODENAME and %% to %. Returns 0, or -1 with a message in err. */
int fg_state_path(char *out, size_t outlen, char *err, size_t errlen);

/* Map an existing state file after validating it. Returns NULL with a message in err. */
struct fg_state *fg_state_open(const char *path, char *err, size_t errlen);

/* Create a state file atomically (temp file + link, or rename when replace is set).
 * Fails with EEXIST semantics (returns -1, *exists = 1) when it exists and !replace. */
int fg_state_create(const char *path, const struct fg_create_params *p, int replace,
		    int *exists, char *err, size_t errlen);

/* Open the state file, creating it from FAKEGPU_* variables when it does not exist yet.
 * fg_state_attach wants an NVIDIA machine (libcuda, NVML); fg_state_attach_vendor takes the
 * vendor the caller simulates (FG_VENDOR_ANY: any), refuses a machine of another vendor with
 * a message in err, and makes a missing file of its vendor unless FAKEGPU_VENDOR says else. */
struct fg_state *fg_state_attach(char *err, size_t errlen);
struct fg_state *fg_state_attach_vendor(unsigned vendor, char *err, size_t errlen);
const char *fg_vendor_name(unsigned vendor);
/* "gfx90a" from an AMD device's configuration. */
void fg_gfx_format(const struct fg_device_config *c, char *out, size_t outlen);

/* Defaults plus FAKEGPU_COUNT, _MEM, _SMS, _NAME, _CC, _UUIDS, _PCI, _KERNEL_NS,
 * _BLOCKS_PER_SM, _ALLOC_GRANULARITY, _UTIL_WINDOW_MS, _CTX_OVERHEAD. */
int fg_params_from_env(struct fg_create_params *p, char *err, size_t errlen);
/* The same, with the vendor FAKEGPU_VENDOR defaults to (fg_params_from_env: NVIDIA). */
int fg_params_from_env_vendor(struct fg_create_params *p, unsigned default_vendor, char *err,
			      size_t errlen);
void fg_params_defaults(struct fg_create_params *p, uint32_t count);
/* Make p's devices AMD ones (MI210-like defaults: name, memory, CUs, gfx90a, PCI ids). */
void fg_params_amd_defaults(struct fg_create_params *p);

/* Lock with a bounded wait and EOWNERDEAD recovery. Returns 0 or -1 (timed out). */
int fg_lock(struct fg_state *s);
void fg_unlock(struct fg_state *s);

/* With the lock held: */
struct fg_proc *fg_proc_slot(struct fg_state *s, int pid, uint32_t dev);
void fg_reap_dead(struct fg_state *s); /* give back what exited processes held */
/* Try to account delta bytes to (pid, dev); fails (-1) when it does not fit. */
int fg_mem_account(struct fg_state *s, int pid, uint32_t dev, int64_t delta);
/* Append [start, end) for pid to dev's timeline (coalescing back-to-back intervals). */
void fg_timeline_add(struct fg_state *s, uint32_t dev, int pid, uint64_t start, uint64_t end,
		     uint64_t work_at_start);
/* The scheduler (fg_sched.c), all with the lock held. Simulate dev up to now: processes with
 * work queued run in turn for timeslice_ns each, a preemptive switch costs switch_ns, and the
 * driver's utilization samples are taken every sample_ms. */
void fg_sched_advance(struct fg_state *s, uint32_t dev, uint64_t now);
/* Queue dur ns of work for p (call fg_sched_advance first); returns p's new enq_ns. */
uint64_t fg_sched_submit(struct fg_state *s, uint32_t dev, struct fg_proc *p, uint64_t dur,
			 uint64_t now);
/* p leaves (exited or killed): its queued work is dropped. */
void fg_sched_drop(struct fg_state *s, struct fg_proc *p, uint64_t now);
/* When p's completed work reached `work` (ns), from the timeline; 0 when not known. */
uint64_t fg_sched_work_time(const struct fg_state *s, uint32_t dev, int pid, uint64_t work);
/* Busy nanoseconds of dev within [from, to), in total and, if pid != 0, for pid only.
 * *complete = 0 when the ring no longer reaches back to `from`. */
uint64_t fg_busy_ns(const struct fg_state *s, uint32_t dev, uint64_t from, uint64_t to, int pid,
		    int *complete);

/* Helpers shared by the libraries and tools. */
uint64_t fg_now_ns(void);
int fg_alive(int pid, uint64_t start_time);
uint64_t fg_proc_start_time(int pid);
void fg_uuid_format(const unsigned char uuid[FG_UUID_LEN], char *out, size_t outlen);
int fg_uuid_parse(const char *s, unsigned char uuid[FG_UUID_LEN]);
void fg_busid_format(const struct fg_device_config *c, char *out, size_t outlen);
int fg_parse_size(const char *s, uint64_t *out);

#endif /* FG_STATE_H */
