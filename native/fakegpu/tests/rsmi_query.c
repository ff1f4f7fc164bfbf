/*
 * fakegpu: a ROCm SMI client, built against Debian's rocm_smi.h and linked against
 * librocm_smi64.so.1; run it on the simulated AMD GPU (LD_LIBRARY_PATH=build/fakegpu).
 *   devices        every device's identity, memory and busy percent, one JSON object
 *   procs          rsmi_compute_process_info_get (two-call pattern), JSON
 *   pid PID        rsmi_compute_process_info_by_pid_get and rsmi_compute_process_gpus_get
 *   busy DEV MS N  N samples of the busy percent of DEV, MS ms apart, JSON list
 * Exit 0 ok, 1 a call failed (FAIL line), 2 usage; "init" mode prints rsmi_init's status.
 */
#include <rocm_smi/rocm_smi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x)                                                                          \
	do {                                                                              \
		rsmi_status_t s_ = (x);                                                   \
		if (s_ != RSMI_STATUS_SUCCESS) {                                          \
			const char *t_ = "?";                                             \
			rsmi_status_string(s_, &t_);                                      \
			printf("FAIL %s:%d %s -> %d %s\n", __FILE__, __LINE__, #x, (int)s_, t_); \
			return 1;                                                         \
		}                                                                         \
	} while (0)

static int devices(void)
{
	uint32_t n = 0;
	rsmi_version_t v;

	CHECK(rsmi_num_monitor_devices(&n));
	CHECK(rsmi_version_get(&v));
	printf("{\"count\":%u,\"version\":\"%u.%u.%u\",\"devices\":[", n, v.major, v.minor, v.patch);
	for (uint32_t i = 0; i < n; i++) {
		char name[128], brand[128];
		uint16_t id = 0, vendor = 0;
		uint64_t uid = 0, bdf = 0, total = 0, used = 0;
		uint32_t busy = 0;

		CHECK(rsmi_dev_name_get(i, name, sizeof(name)));
		CHECK(rsmi_dev_brand_get(i, brand, sizeof(brand)));
		CHECK(rsmi_dev_id_get(i, &id));
		CHECK(rsmi_dev_vendor_id_get(i, &vendor));
		CHECK(rsmi_dev_unique_id_get(i, &uid));
		CHECK(rsmi_dev_pci_id_get(i, &bdf));
		CHECK(rsmi_dev_memory_total_get(i, RSMI_MEM_TYPE_VRAM, &total));
		CHECK(rsmi_dev_memory_usage_get(i, RSMI_MEM_TYPE_VRAM, &used));
		CHECK(rsmi_dev_busy_percent_get(i, &busy));
		printf("%s{\"name\":\"%s\",\"brand\":\"%s\",\"id\":%u,\"vendor\":%u,\"unique_id\":%llu,"
		       "\"bdfid\":%llu,\"vram_total\":%llu,\"vram_used\":%llu,\"busy\":%u}",
		       i ? "," : "", name, brand, id, vendor, (unsigned long long)uid,
		       (unsigned long long)bdf, (unsigned long long)total, (unsigned long long)used,
		       busy);
	}
	printf("]}\n");
	return 0;
}

static void print_proc(const rsmi_process_info_t *p, int first)
{
	printf("%s{\"pid\":%u,\"pasid\":%u,\"vram\":%llu,\"sdma\":%llu,\"cu_occupancy\":%u}",
	       first ? "" : ",", p->process_id, p->pasid, (unsigned long long)p->vram_usage,
	       (unsigned long long)p->sdma_usage, p->cu_occupancy);
}

static int procs(void)
{
	uint32_t n = 0;
	rsmi_process_info_t *list;

	CHECK(rsmi_compute_process_info_get(NULL, &n));
	list = calloc(n ? n : 1, sizeof(*list));
	if (!list)
		return 1;
	CHECK(rsmi_compute_process_info_get(list, &n));
	printf("[");
	for (uint32_t i = 0; i < n; i++)
		print_proc(&list[i], i == 0);
	printf("]\n");
	free(list);
	return 0;
}

static int by_pid(uint32_t pid)
{
	rsmi_process_info_t p;
	uint32_t devs[16], n = 16, count = 0;

	CHECK(rsmi_compute_process_info_by_pid_get(pid, &p));
	CHECK(rsmi_compute_process_gpus_get(pid, NULL, &count));
	CHECK(rsmi_compute_process_gpus_get(pid, devs, &n));
	printf("{\"proc\":");
	print_proc(&p, 1);
	printf(",\"gpu_count\":%u,\"gpus\":[", count);
	for (uint32_t i = 0; i < n; i++)
		printf("%s%u", i ? "," : "", devs[i]);
	printf("]}\n");
	return 0;
}

static int busy(uint32_t dev, unsigned ms, unsigned count)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	printf("[");
	for (unsigned i = 0; i < count; i++) {
		uint32_t b = 0;

		if (i)
			nanosleep(&ts, NULL);
		CHECK(rsmi_dev_busy_percent_get(dev, &b));
		printf("%s%u", i ? "," : "", b);
		fflush(stdout);
	}
	printf("]\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "devices";
	rsmi_status_t s = rsmi_init(0);
	int rv = 2;

	if (!strcmp(mode, "init")) {
		printf("{\"init\":%d}\n", (int)s);
		return 0;
	}
	CHECK(s);
	if (!strcmp(mode, "devices"))
		rv = devices();
	else if (!strcmp(mode, "procs"))
		rv = procs();
	else if (!strcmp(mode, "pid") && argc > 2)
		rv = by_pid((uint32_t)strtoul(argv[2], NULL, 10));
	else if (!strcmp(mode, "busy") && argc > 4)
		rv = busy((uint32_t)strtoul(argv[2], NULL, 10), (unsigned)strtoul(argv[3], NULL, 10),
			  (unsigned)strtoul(argv[4], NULL, 10));
	else
		fprintf(stderr, "usage: test-rsmi [init|devices|procs|pid PID|busy DEV MS N]\n");
	CHECK(rsmi_shut_down());
	return rv;
}
