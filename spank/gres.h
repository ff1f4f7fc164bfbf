/* slurm-vgpu SPANK plugin: how many vgpu slices Slurm gave a job (per node) or a step. */
#ifndef VGPU_SPANK_GRES_H
#define VGPU_SPANK_GRES_H

#include <stdint.h>

/* Upper bound on any count we accept: a node never has more slices than this. */
#define VGPU_MAX_COUNT 100000u

/*
 * Sum of `name` counts in one node's gres_detail_str from slurm_load_job(SHOW_DETAIL).
 * Accepts every form Slurm 22.05 prints: "vgpu(CNT:3)" (count-only GRES),
 * "vgpu:3(IDX:0-2)" (file-backed), typed "vgpu:g0:2(IDX:0-1)", and lists of several GRES
 * ("gpu:1(IDX:0),vgpu(CNT:2)"). Returns 0 and sets *count (0 when `name` is absent), or -1
 * when a `name` entry is malformed.
 */
int vgpu_gres_detail_count(const char *detail, const char *name, uint32_t *count);

/*
 * Sum of `name` counts in a step's tres_per_node ("gres:vgpu:2", "gres/vgpu:2",
 * "gres:gpu:1,gres:vgpu:g0:2"). Returns 1 and sets *count when `name` appears, 0 when it does
 * not (the step then inherits the job's allocation), -1 when malformed.
 */
int vgpu_tres_count(const char *tres, const char *name, uint32_t *count);

/*
 * `name` count in a step's or job's tres_alloc_str ("cpu=1,mem=0,node=1,gres/vgpu=2"): only
 * the untyped total "gres/<name>=N" counts (typed entries repeat it). Returns 0 and sets
 * *count (0 when absent: nothing of `name` allocated), or -1 when malformed.
 */
int vgpu_tres_alloc_count(const char *tres, const char *name, uint32_t *count);

/* Strict decimal parse of s[0..len) into *out (<= VGPU_MAX_COUNT). Returns 0 or -1. */
int vgpu_parse_count(const char *s, size_t len, uint32_t *out);

#endif
