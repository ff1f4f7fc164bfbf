/*
 * fakegpu libcuda: registry of live handles (streams, events, modules, graphs, ...).
 *
 * The real driver answers CUDA_ERROR_INVALID_HANDLE for a destroyed or foreign handle instead
 * of crashing; looking handles up here (never dereferencing one first) gives the same.
 */
#include "cuda_internal.h"

#include <stdlib.h>

struct slot {
	uintptr_t key;   /* 0 empty, 1 deleted */
	uint32_t tag;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;
static size_t cap, used; /* used counts live and deleted slots */

static size_t hash(uintptr_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (size_t)k;
}

static int grow(void)
{
	size_t ncap = cap ? cap * 2 : 1024;
	struct slot *n = calloc(ncap, sizeof(*n));
	size_t live = 0;

	if (!n)
		return -1;
	for (size_t i = 0; i < cap; i++) {
		if (slots[i].key > 1) {
			size_t j = hash(slots[i].key) & (ncap - 1);

			while (n[j].key)
				j = (j + 1) & (ncap - 1);
			n[j] = slots[i];
			live++;
		}
	}
	free(slots);
	slots = n;
	cap = ncap;
	used = live;
	return 0;
}

int fg_handle_add(const void *h, uint32_t tag)
{
	uintptr_t k = (uintptr_t)h;
	size_t j;
	int rv = -1;

	pthread_mutex_lock(&mu);
	if ((used + 1) * 2 > cap && grow())
		goto fail;
	j = hash(k) & (cap - 1);
	while (slots[j].key > 1 && slots[j].key != k)
		j = (j + 1) & (cap - 1);
	if (!slots[j].key)
		used++;
	slots[j].key = k;
	slots[j].tag = tag;
	rv = 0;
fail:
	pthread_mutex_unlock(&mu);
	return rv;
}

static size_t find(uintptr_t k) /* mu held; returns cap when absent */
{
	size_t j;

	if (!cap || k <= 1)
		return cap;
	j = hash(k) & (cap - 1);
	while (slots[j].key) {
		if (slots[j].key == k)
			return j;
		j = (j + 1) & (cap - 1);
	}
	return cap;
}

int fg_handle_is(const void *h, uint32_t tag)
{
	size_t j;
	int ok;

	pthread_mutex_lock(&mu);
	j = find((uintptr_t)h);
	ok = j < cap && slots[j].tag == tag;
	pthread_mutex_unlock(&mu);
	return ok;
}

int fg_handle_del(const void *h, uint32_t tag)
{
	size_t j;
	int rv = -1;

	pthread_mutex_lock(&mu);
	j = find((uintptr_t)h);
	if (j < cap && slots[j].tag == tag) {
		slots[j].key = 1;
		rv = 0;
	}
	pthread_mutex_unlock(&mu);
	return rv;
}
