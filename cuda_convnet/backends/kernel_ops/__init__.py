"""Kernel-backed ops, one mixin per op family (mirrors csrc/<family>.cuh)."""
