/* bench/ipc_rtt.c: what a root-side allocation broker would add to every allocation (docs/security.md).
 * cc -O2 -o /tmp/ipc_rtt bench/ipc_rtt.c && /tmp/ipc_rtt */
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
/* round trip of a 32-byte request/reply over AF_UNIX SOCK_SEQPACKET between two processes:
 * the cost a root-side allocation broker would add to every cudaMalloc */
int main(void) {
	int sv[2]; char buf[32] = {0};
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv)) return 1;
	pid_t pid = fork();
	if (pid == 0) { close(sv[0]); while (read(sv[1], buf, sizeof buf) > 0) if (write(sv[1], buf, sizeof buf) < 0) break; _exit(0); }
	close(sv[1]);
	const int N = 20000; double best = 1e9, sum = 0;
	for (int i = 0; i < N; i++) {
		struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
		if (write(sv[0], buf, sizeof buf) < 0 || read(sv[0], buf, sizeof buf) <= 0) return 1;
		clock_gettime(CLOCK_MONOTONIC, &b);
		double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
		sum += ns; if (ns < best) best = ns;
	}
	close(sv[0]); waitpid(pid, NULL, 0);
	printf("AF_UNIX round trip: best %.1f us, mean %.1f us over %d\n", best / 1e3, sum / N / 1e3, N);
	return 0;
}
