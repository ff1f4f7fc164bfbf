/*
 * fakegpu libcuda: the answer to cudart's driver integrity check (export table
 * {d4082055-...}). cudart >= 12 asks for version V, V+1, V+2 and compares with what it
 * computes itself. Per public reverse engineering (ZLUDA): V%10 == 0 and V%10 == 1 have
 * fixed answers; otherwise an HMAC-MD2 over (driver version, V, pid, tid, table addresses,
 * unix time, and each device's UUID and PCI ids). MD2 is RFC 1319, written from the RFC.
 */
#include "cuda_internal.h"

#include <string.h>
#include <unistd.h>

static const uint8_t md2_s[256] = { /* RFC 1319 "PI_SUBST" */
	41, 46, 67, 201, 162, 216, 124, 1, 61, 54, 84, 161, 236, 240, 6, 19,
	98, 167, 5, 243, 192, 199, 115, 140, 152, 147, 43, 217, 188, 76, 130, 202,
	30, 155, 87, 60, 253, 212, 224, 22, 103, 66, 111, 24, 138, 23, 229, 18,
	190, 78, 196, 214, 218, 158, 222, 73, 160, 251, 245, 142, 187, 47, 238, 122,
	169, 104, 121, 145, 21, 178, 7, 63, 148, 194, 16, 137, 11, 34, 95, 33,
	128, 127, 93, 154, 90, 144, 50, 39, 53, 62, 204, 231, 191, 247, 151, 3,
	255, 25, 48, 179, 72, 165, 181, 209, 215, 94, 146, 42, 172, 86, 170, 198,
	79, 184, 56, 210, 150, 164, 125, 182, 118, 252, 107, 226, 156, 116, 4, 241,
	69, 157, 112, 89, 100, 113, 135, 32, 134, 91, 207, 101, 230, 45, 168, 2,
	27, 96, 37, 173, 174, 176, 185, 246, 28, 70, 97, 105, 52, 64, 126, 15,
	85, 71, 163, 35, 221, 81, 175, 58, 195, 92, 249, 206, 186, 197, 234, 38,
	44, 83, 13, 110, 133, 40, 132, 9, 211, 223, 205, 244, 65, 129, 77, 82,
	106, 220, 55, 200, 108, 193, 171, 250, 36, 225, 123, 8, 12, 189, 177, 74,
	120, 136, 149, 139, 227, 99, 232, 109, 233, 203, 213, 254, 59, 0, 29, 57,
	242, 239, 183, 14, 102, 88, 208, 228, 166, 119, 114, 248, 235, 117, 75, 10,
	49, 68, 80, 180, 143, 237, 31, 26, 219, 153, 141, 51, 159, 17, 131, 20,
};

struct md2 {
	uint8_t x[48], c[16], buf[16];
	unsigned n;
};

static void md2_block(struct md2 *m, const uint8_t *b)
{
	uint8_t l = m->c[15], t = 0;

	for (int j = 0; j < 16; j++) {
		m->x[16 + j] = b[j];
		m->x[32 + j] = (uint8_t)(m->x[16 + j] ^ m->x[j]);
		l = m->c[j] ^= md2_s[b[j] ^ l];
	}
	for (int j = 0; j < 18; j++) {
		for (int k = 0; k < 48; k++)
			t = m->x[k] ^= md2_s[t];
		t = (uint8_t)(t + j);
	}
}

static void md2_update(struct md2 *m, const void *p, size_t n, uint8_t xor_with)
{
	const uint8_t *s = p;

	for (size_t i = 0; i < n; i++) {
		m->buf[m->n++] = s[i] ^ xor_with;
		if (m->n == 16) {
			md2_block(m, m->buf);
			m->n = 0;
		}
	}
}

static void md2_final(struct md2 *m, uint8_t out[16])
{
	uint8_t pad = (uint8_t)(16 - m->n), p[16], c[16];

	memset(p, pad, sizeof(p));
	md2_update(m, p, pad, 0);
	memcpy(c, m->c, sizeof(c));
	md2_block(m, c);
	memcpy(out, m->x, 16);
}

#pragma pack(push, 1)
struct integrity_msg {
	uint32_t driver_version, version, pid, tid;
	const void *cudart_table, *integrity_table, *fn;
	uint64_t unix_seconds;
};

struct integrity_dev {
	unsigned char uuid[16];
	int32_t pci_domain, pci_bus, pci_device;
};
#pragma pack(pop)

int fg_integrity_digest(unsigned version, uint64_t unix_seconds, uint64_t out[2],
			const void *cudart_table, const void *integrity_table, const void *fn)
{
	static const uint8_t key[16] = { 0x14, 0x6A, 0xDD, 0xAE, 0x53, 0xA9, 0xA7, 0x52,
					 0xAA, 0x08, 0x41, 0x36, 0x0B, 0xF5, 0x5A, 0x9F };
	struct integrity_msg msg;
	struct md2 m;
	uint8_t inner[16];
	int n = 0;

	if (version % 10 == 0) {
		out[0] = 0x3341181C03CB675CULL;
		out[1] = 0x8ED383AA1F4CD1E8ULL;
		return 0;
	}
	if (version % 10 == 1) {
		out[0] = 0x1841181C03CB675CULL;
		out[1] = 0x8ED383AA1F4CD1E8ULL;
		return 0;
	}
	memset(&m, 0, sizeof(m));
	md2_update(&m, key, sizeof(key), 0x36);
	memset(&msg, 0, sizeof(msg));
	msg.driver_version = FG_DRIVER_VERSION;
	msg.version = version;
	msg.pid = (uint32_t)getpid();
	msg.tid = (uint32_t)(uintptr_t)pthread_self();
	msg.cudart_table = cudart_table;
	msg.integrity_table = integrity_table;
	msg.fn = fn;
	msg.unix_seconds = unix_seconds;
	md2_update(&m, &msg, sizeof(msg), 0);
	if (cuDeviceGetCount(&n) != CUDA_SUCCESS)
		n = 0;
	for (int d = 0; d < n; d++) {
		struct integrity_dev dv;

		memset(&dv, 0, sizeof(dv));
		cuDeviceGetUuid_v2((CUuuid *)dv.uuid, d);
		cuDeviceGetAttribute(&dv.pci_domain, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, d);
		cuDeviceGetAttribute(&dv.pci_bus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, d);
		cuDeviceGetAttribute(&dv.pci_device, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, d);
		md2_update(&m, &dv, sizeof(dv), 0);
	}
	md2_final(&m, inner);
	memset(&m, 0, sizeof(m));
	md2_update(&m, key, sizeof(key), 0x5c);
	md2_update(&m, inner, sizeof(inner), 0);
	md2_final(&m, (uint8_t *)out);
	return 0;
}
