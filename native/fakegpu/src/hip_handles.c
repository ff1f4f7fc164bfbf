/* fakegpu libamdhip64: the live-handle registry (streams, events, graphs, modules, pools), so
 * that a stale or foreign handle is an error instead of a crash. */
#include "hip_internal.h"

#include <stdlib.h>

struct entry {
	const void *h;
	uint32_t tag;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *tab;
static size_t len, cap;

static size_t find(const void *h) /* mu held; len when absent */
{
	for (size_t i = 0; i < len; i++)
		if (tab[i].h == h)
			return i;
	return len;
}

int fg_hip_handle_add(const void *h, uint32_t tag)
{
	int rv = 0;

	pthread_mutex_lock(&mu);
	if (len == cap) {
		size_t n = cap ? cap * 2 : 64;
		struct entry *t = realloc(tab, n * sizeof(*t));

		if (!t) {
			rv = -1;
			goto out;
		}
		tab = t;
		cap = n;
	}
	tab[len].h = h;
	tab[len].tag = tag;
	len++;
out:
	pthread_mutex_unlock(&mu);
	return rv;
}

int fg_hip_handle_is(const void *h, uint32_t tag)
{
	size_t i;
	int rv;

	if (!h)
		return 0;
	pthread_mutex_lock(&mu);
	i = find(h);
	rv = i < len && tab[i].tag == tag;
	pthread_mutex_unlock(&mu);
	return rv;
}

int fg_hip_handle_del(const void *h, uint32_t tag)
{
	size_t i;
	int rv = -1;

	pthread_mutex_lock(&mu);
	i = find(h);
	if (i < len && tab[i].tag == tag) {
		tab[i] = tab[--len];
		rv = 0;
	}
	pthread_mutex_unlock(&mu);
	return rv;
}
