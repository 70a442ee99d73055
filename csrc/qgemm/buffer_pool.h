// A small cache of large output buffers. Fresh memory from the OS must be
// faulted in and zeroed by the kernel on first touch, which costs more than
// dequantizing into it; reusing a block released by a previous result avoids
// that (the same reason ONNX Runtime keeps an arena). Bounded: at most
// kMaxFreeBlocks blocks and kMaxFreeBytes bytes are kept.
#pragma once
#include <cstddef>

namespace qgemm {

// At least `bytes` bytes, 64-byte aligned. Never returns nullptr (throws bad_alloc).
void* pool_acquire(size_t bytes, size_t* capacity);
// Returns a block from pool_acquire; it is cached or freed.
void pool_release(void* p, size_t capacity);

}  // namespace qgemm
