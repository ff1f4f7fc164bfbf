/* vgpu_layout: prints the C layout of the limits and state files as JSON, so the Python
 * binding's cdef can be checked against the headers (tests/test_hook_binding.py). */
#include <stddef.h>
#include <stdio.h>

#include "vgpu_abi.h"
#include "vgpu_state.h"

#define F(type, field) printf(",\n  \"" #type "." #field "\": %zu", offsetof(struct type, field))

int main(void)
{
	printf("{\n  \"sizeof.vgpu_limits\": %zu", sizeof(struct vgpu_limits));
	printf(",\n  \"sizeof.vgpu_gpu_limit\": %zu", sizeof(struct vgpu_gpu_limit));
	printf(",\n  \"sizeof.vgpu_state\": %zu", sizeof(struct vgpu_state));
	printf(",\n  \"sizeof.vgpu_state_gpu\": %zu", sizeof(struct vgpu_state_gpu));
	printf(",\n  \"sizeof.vgpu_state_proc\": %zu", sizeof(struct vgpu_state_proc));
	F(vgpu_limits, generation);
	F(vgpu_limits, job_id);
	F(vgpu_limits, uid);
	F(vgpu_limits, share_policy);
	F(vgpu_limits, ngpus);
	F(vgpu_limits, gpu);
	F(vgpu_gpu_limit, physical_index);
	F(vgpu_gpu_limit, memory_limit_bytes);
	F(vgpu_gpu_limit, compute_limit_permille);
	F(vgpu_state, gate_mask);
	F(vgpu_state, last_reclaim_ns);
	F(vgpu_state, lock);
	F(vgpu_state, gpu);
	F(vgpu_state, proc);
	F(vgpu_state_gpu, used_bytes);
	F(vgpu_state_gpu, tokens_ns);
	F(vgpu_state_gpu, sampler_pid);
	F(vgpu_state_gpu, sampler_seen_us);
	F(vgpu_state_gpu, others_busy_ns);
	F(vgpu_state_proc, start_time);
	F(vgpu_state_proc, used_bytes);
	F(vgpu_state_proc, busy_ns);
	printf(",\n  \"sizeof.pthread_mutex_t\": %zu\n}\n", sizeof(pthread_mutex_t));
	return 0;
}
