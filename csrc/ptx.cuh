// The inline PTX the tensor-core and pipelined kernels use, each in a small wrapper that is
// the real instruction under nvcc (sm_80+) and a functional model under the SIMT emulator
// (ARCHITECTURE.md §5). One header per instruction family:
//   ptx/mma.cuh       mma.sync m16n8k8 tf32, m16n8k16 bf16 (fragment tables there)
//   ptx/ldmatrix.cuh  ldmatrix .x1/.x2/.x4, with and without .trans
//   ptx/cvt.cuh       cvt.rna.tf32.f32, cvt.rn.bf16.f32, cvt.rn.bf16x2.f32
//   ptx/cp_async.cuh  cp.async + commit_group + wait_group / wait_all
#pragma once

#include "ptx/cp_async.cuh"
#include "ptx/cvt.cuh"
#include "ptx/ldmatrix.cuh"
#include "ptx/mma.cuh"
