/* fakegpu: device configuration from FAKEGPU_* variables; sizes, UUIDs and bus ids. */
#define _GNU_SOURCE
#include "fg_state.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define DEFAULT_NAME "NVIDIA FakeGPU"
#define DEFAULT_MEMORY (16ULL << 30)
#define DEFAULT_SMS 108u
#define DEFAULT_KERNEL_NS 100000ULL
#define DEFAULT_BLOCKS_PER_SM 2u
#define DEFAULT_GRANULARITY 512ULL
#define DEFAULT_UTIL_WINDOW_MS 1000u
#define DEFAULT_AMD_NAME "AMD Instinct MI210"
#define DEFAULT_AMD_MEMORY (64ULL << 30)
#define DEFAULT_AMD_CUS 104u
/* Measured on an H200 (docs/fakegpu.md, shared/hardware/h200.md): processes with work queued
 * alternate in runs of 4.5 ms; NVML takes a per-process sample every 200 ms; a CUDA context
 * and the driver's allocations take about 0.5 GiB per process. The switch cost is derived:
 * two always-busy processes completed 85-91 % of the solo work together, i.e. 0.45-0.8 ms lost
 * per 4.5 ms run; 0.5 ms is assumed. */
#define DEFAULT_TIMESLICE_NS 4500000ULL
#define DEFAULT_SWITCH_NS 500000ULL
#define DEFAULT_SAMPLE_MS 200u
#define DEFAULT_CTX_OVERHEAD_MIB 512u

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int fg_parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	double mult = 1;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || v < 0)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case 'K': mult = 1024.0; end++; break;
	case 'M': mult = 1048576.0; end++; break;
	case 'G': mult = 1073741824.0; end++; break;
	case 'T': mult = 1099511627776.0; end++; break;
	default: break;
	}
	if (mult > 1 && *end == 'i')
		end++;
	if (*end == 'B')
		end++;
	if (*end || v * mult > 1.8e19)
		return -1;
	*out = (uint64_t)(v * mult);
	return 0;
}

void fg_uuid_format(const unsigned char u[FG_UUID_LEN], char *out, size_t outlen)
{
	snprintf(out, outlen,
		 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

int fg_uuid_parse(const char *s, unsigned char u[FG_UUID_LEN])
{
	unsigned n = 0;

	if (!strncmp(s, "GPU-", 4))
		s += 4;
	for (; *s; s++) {
		int hi;

		if (*s == '-')
			continue;
		if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]) || n >= FG_UUID_LEN)
			return -1;
		hi = isdigit((unsigned char)s[0]) ? s[0] - '0' : (tolower((unsigned char)s[0]) - 'a' + 10);
		u[n] = (unsigned char)(hi << 4);
		u[n] |= (unsigned char)(isdigit((unsigned char)s[1]) ? s[1] - '0' :
					(tolower((unsigned char)s[1]) - 'a' + 10));
		n++;
		s++;
	}
	return n == FG_UUID_LEN ? 0 : -1;
}

void fg_busid_format(const struct fg_device_config *c, char *out, size_t outlen)
{
	snprintf(out, outlen, "%08X:%02X:%02X.0", c->pci_domain, c->pci_bus & 0xff,
		 c->pci_device & 0x1f);
}

static int parse_busid(const char *s, struct fg_device_config *c)
{
	unsigned dom = 0, bus, dev, fn;

	if (sscanf(s, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4) {
		dom = 0;
		if (sscanf(s, "%x:%x.%x", &bus, &dev, &fn) != 3)
			return -1;
	}
	if (bus > 0xff || dev > 0x1f)
		return -1;
	c->pci_domain = dom;
	c->pci_bus = bus;
	c->pci_device = dev;
	return 0;
}

/* Item i of a comma-separated variable; the last item repeats. NULL when unset. */
static const char *env_item(const char *var, uint32_t i, char *buf, size_t n)
{
	const char *s = getenv(var), *p;
	size_t len;

	if (!s || !*s)
		return NULL;
	p = s;
	for (uint32_t k = 0; k < i; k++) {
		const char *c = strchr(p, ',');

		if (!c)
			break;
		p = c + 1;
	}
	len = strcspn(p, ",");
	if (len >= n)
		len = n - 1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return buf;
}

void fg_params_defaults(struct fg_create_params *p, uint32_t count)
{
	unsigned char seed[8] = {0};

	memset(p, 0, sizeof(*p));
	p->device_count = count > FG_MAX_DEVICES ? FG_MAX_DEVICES : count;
	p->blocks_per_sm = DEFAULT_BLOCKS_PER_SM;
	p->kernel_ns = DEFAULT_KERNEL_NS;
	p->alloc_granularity = DEFAULT_GRANULARITY;
	p->util_window_ms = DEFAULT_UTIL_WINDOW_MS;
	p->timeslice_ns = DEFAULT_TIMESLICE_NS;
	p->switch_ns = DEFAULT_SWITCH_NS;
	p->sample_ms = DEFAULT_SAMPLE_MS;
	p->ctx_overhead_mib = DEFAULT_CTX_OVERHEAD_MIB;
	p->ideal = 0;
	/* Random per machine, so two simulated nodes never share a UUID. */
	if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) < 0) {
		uint64_t t = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;

		memcpy(seed, &t, sizeof(seed));
	}
	for (uint32_t i = 0; i < FG_MAX_DEVICES; i++) {
		struct fg_device_config *c = &p->config[i];

		snprintf(c->name, sizeof(c->name), "%s", DEFAULT_NAME);
		c->memory_bytes = DEFAULT_MEMORY;
		c->sms = DEFAULT_SMS;
		c->cc_major = 8;
		c->cc_minor = 0;
		c->pci_domain = 0;
		c->pci_bus = 0x10 + i;
		c->pci_device = 0;
		c->pci_device_id = 0x20B010DE;
		c->pci_subsystem_id = 0x134F10DE;
		/* GPU-fa4e6700-<seed>-...-<index>: recognizably fake, version-4 style */
		c->uuid[0] = 0xfa; c->uuid[1] = 0x4e; c->uuid[2] = 0x67; c->uuid[3] = 0x00;
		memcpy(&c->uuid[4], seed, 8);
		c->uuid[6] = (unsigned char)((c->uuid[6] & 0x0f) | 0x40);
		c->uuid[8] = (unsigned char)((c->uuid[8] & 0x3f) | 0x80);
		c->uuid[12] = 0; c->uuid[13] = 0; c->uuid[14] = 0;
		c->uuid[15] = (unsigned char)i;
	}
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return (end == s || *end || errno || *s == '-') ? -1 : 0;
}

/* AMD defaults, modelled on an AMD Instinct MI210: 64 GiB HBM2e, 104 compute units, gfx90a,
 * PCI device 0x740f of vendor 0x1002. */
void fg_params_amd_defaults(struct fg_create_params *p)
{
	for (uint32_t i = 0; i < FG_MAX_DEVICES; i++) {
		struct fg_device_config *c = &p->config[i];

		snprintf(c->name, sizeof(c->name), "%s", DEFAULT_AMD_NAME);
		c->memory_bytes = DEFAULT_AMD_MEMORY;
		c->sms = DEFAULT_AMD_CUS;
		c->cc_major = 9;
		c->cc_minor = 0;
		c->gfx_step = 0xa;
		c->vendor = FG_VENDOR_AMD;
		c->pci_device_id = 0x740F1002;
		c->pci_subsystem_id = 0x0C341002;
	}
}

/* "gfx90a" -> 9, 0, 0xa; "gfx1100" -> 11, 0, 0; the last two characters are minor and stepping. */
static int parse_gfx(const char *s, struct fg_device_config *c)
{
	size_t n;
	unsigned major = 0;

	if (strncmp(s, "gfx", 3))
		return -1;
	s += 3;
	n = strlen(s);
	if (n < 3 || n > 4)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) || (i < n - 1 && !isdigit((unsigned char)s[i])))
			return -1;
	for (size_t i = 0; i < n - 2; i++)
		major = major * 10 + (unsigned)(s[i] - '0');
	if (!major)
		return -1;
	c->cc_major = major;
	c->cc_minor = (uint32_t)(s[n - 2] - '0');
	c->gfx_step = (uint8_t)(isdigit((unsigned char)s[n - 1]) ? s[n - 1] - '0' :
				tolower((unsigned char)s[n - 1]) - 'a' + 10);
	return 0;
}

int fg_params_from_env(struct fg_create_params *p, char *err, size_t errlen)
{
	return fg_params_from_env_vendor(p, FG_VENDOR_NVIDIA, err, errlen);
}

int fg_params_from_env_vendor(struct fg_create_params *p, unsigned default_vendor, char *err,
			      size_t errlen)
{
	char buf[256];
	const char *v;
	uint64_t n = 1;
	unsigned vendor = default_vendor;

	v = getenv("FAKEGPU_COUNT");
	if (v && *v && (parse_u64(v, &n) || n > FG_MAX_DEVICES)) {
		set_err(err, errlen, "FAKEGPU_COUNT=%s: expected a device count from 0 to %u", v,
			FG_MAX_DEVICES);
		return -1;
	}
	if ((v = getenv("FAKEGPU_VENDOR")) && *v) {
		if (!strcmp(v, "amd"))
			vendor = FG_VENDOR_AMD;
		else if (!strcmp(v, "nvidia"))
			vendor = FG_VENDOR_NVIDIA;
		else {
			set_err(err, errlen, "FAKEGPU_VENDOR=%s: expected nvidia or amd", v);
			return -1;
		}
	}
	fg_params_defaults(p, (uint32_t)n);
	if (vendor == FG_VENDOR_AMD)
		fg_params_amd_defaults(p);
	if (vendor != FG_VENDOR_AMD && (v = getenv("FAKEGPU_ARCH")) && *v) {
		set_err(err, errlen, "FAKEGPU_ARCH=%s: only AMD devices have a gfx arch "
			"(FAKEGPU_VENDOR=amd)", v);
		return -1;
	}
	for (uint32_t i = 0; i < p->device_count; i++) {
		struct fg_device_config *c = &p->config[i];
		unsigned ma, mi;

		if ((v = env_item("FAKEGPU_MEM", i, buf, sizeof(buf))) &&
		    (fg_parse_size(v, &c->memory_bytes) || !c->memory_bytes)) {
			set_err(err, errlen, "FAKEGPU_MEM item '%s': expected a size like 16G or 81920M", v);
			return -1;
		}
		if ((v = env_item("FAKEGPU_SMS", i, buf, sizeof(buf))) &&
		    (parse_u64(v, &n) || !n || n > 100000)) {
			set_err(err, errlen, "FAKEGPU_SMS item '%s': expected an SM count", v);
			return -1;
		} else if (v) {
			c->sms = (uint32_t)n;
		}
		if ((v = env_item("FAKEGPU_NAME", i, buf, sizeof(buf))))
			snprintf(c->name, sizeof(c->name), "%s", v);
		if (vendor == FG_VENDOR_AMD && (v = env_item("FAKEGPU_CC", i, buf, sizeof(buf)))) {
			set_err(err, errlen, "FAKEGPU_CC=%s: an AMD device's version comes from its gfx "
				"arch: set FAKEGPU_ARCH (e.g. gfx90a) instead", v);
			return -1;
		}
		if ((v = env_item("FAKEGPU_CC", i, buf, sizeof(buf)))) {
			if (sscanf(v, "%u.%u", &ma, &mi) != 2 || ma > 99 || mi > 9) {
				set_err(err, errlen, "FAKEGPU_CC item '%s': expected major.minor like 8.0", v);
				return -1;
			}
			c->cc_major = ma;
			c->cc_minor = mi;
		}
		if (vendor == FG_VENDOR_AMD && (v = env_item("FAKEGPU_ARCH", i, buf, sizeof(buf))) &&
		    parse_gfx(v, c)) {
			set_err(err, errlen, "FAKEGPU_ARCH item '%s': expected a gfx arch like gfx90a, "
				"gfx942 or gfx1100", v);
			return -1;
		}
		if ((v = env_item("FAKEGPU_UUIDS", i, buf, sizeof(buf))) && fg_uuid_parse(v, c->uuid)) {
			set_err(err, errlen, "FAKEGPU_UUIDS item '%s': expected GPU-xxxxxxxx-xxxx-xxxx-"
				"xxxx-xxxxxxxxxxxx", v);
			return -1;
		}
		if ((v = env_item("FAKEGPU_PCI", i, buf, sizeof(buf))) && parse_busid(v, c)) {
			set_err(err, errlen, "FAKEGPU_PCI item '%s': expected a bus id like 0000:3b:00.0", v);
			return -1;
		}
	}
	if ((v = getenv("FAKEGPU_KERNEL_NS")) && *v && parse_u64(v, &p->kernel_ns)) {
		set_err(err, errlen, "FAKEGPU_KERNEL_NS=%s: expected nanoseconds", v);
		return -1;
	}
	if ((v = getenv("FAKEGPU_BLOCKS_PER_SM")) && *v && (parse_u64(v, &n) || !n || n > 2048)) {
		set_err(err, errlen, "FAKEGPU_BLOCKS_PER_SM=%s: expected 1..2048", v);
		return -1;
	} else if (v && *v) {
		p->blocks_per_sm = (uint32_t)n;
	}
	if ((v = getenv("FAKEGPU_ALLOC_GRANULARITY")) && *v &&
	    (fg_parse_size(v, &p->alloc_granularity) || !p->alloc_granularity)) {
		set_err(err, errlen, "FAKEGPU_ALLOC_GRANULARITY=%s: expected a size like 512 or 2M", v);
		return -1;
	}
	if ((v = getenv("FAKEGPU_UTIL_WINDOW_MS")) && *v && (parse_u64(v, &n) || !n || n > 3600000)) {
		set_err(err, errlen, "FAKEGPU_UTIL_WINDOW_MS=%s: expected milliseconds", v);
		return -1;
	} else if (v && *v) {
		p->util_window_ms = (uint32_t)n;
	}
	if ((v = getenv("FAKEGPU_CTX_OVERHEAD")) && *v) {
		uint64_t bytes;

		if (fg_parse_size(v, &bytes) || bytes > (1ULL << 40)) {
			set_err(err, errlen, "FAKEGPU_CTX_OVERHEAD=%s: expected a size like 0 or 500M", v);
			return -1;
		}
		p->ctx_overhead_mib = (uint32_t)((bytes + (1 << 20) - 1) >> 20);
	}
	if ((v = getenv("FAKEGPU_TIMESLICE_US")) && *v && (parse_u64(v, &n) || !n || n > 10000000)) {
		set_err(err, errlen, "FAKEGPU_TIMESLICE_US=%s: expected 1..10000000 microseconds", v);
		return -1;
	} else if (v && *v) {
		p->timeslice_ns = n * 1000ULL;
	}
	if ((v = getenv("FAKEGPU_SWITCH_US")) && *v && (parse_u64(v, &n) || n > 1000000)) {
		set_err(err, errlen, "FAKEGPU_SWITCH_US=%s: expected 0..1000000 microseconds", v);
		return -1;
	} else if (v && *v) {
		p->switch_ns = n * 1000ULL;
	}
	if ((v = getenv("FAKEGPU_SAMPLE_MS")) && *v && (parse_u64(v, &n) || !n || n > 60000)) {
		set_err(err, errlen, "FAKEGPU_SAMPLE_MS=%s: expected 1..60000 milliseconds", v);
		return -1;
	} else if (v && *v) {
		p->sample_ms = (uint32_t)n;
	}
	if ((v = getenv("FAKEGPU_SENSORS")) && *v) {
		if (!strcmp(v, "ideal")) {
			/* idealized: exact busy time over any window, switches free. For unit
			 * tests of other parts only: no accuracy figure is measured on it. */
			p->ideal = 1;
			p->switch_ns = 0;
		} else if (strcmp(v, "real")) {
			set_err(err, errlen, "FAKEGPU_SENSORS=%s: expected real or ideal", v);
			return -1;
		}
	}
	return 0;
}
