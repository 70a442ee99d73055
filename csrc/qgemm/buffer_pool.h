// A small cache of large buffers (outputs, scratch). Fresh memory from the OS
// must be faulted in and zeroed by the kernel on first touch, which costs
// more than dequantizing into it; reusing a block released by a previous
// result avoids that (the same reason ONNX Runtime keeps an arena).
// Bounded: at most kMaxFreeBlocks blocks and kMaxFreeBytes bytes are kept,
// and a block larger than kMaxCachedBlock goes straight back to the system.
#pragma once
#include <cstddef>

namespace qgemm {

// At least `bytes` bytes, 64-byte aligned. Never returns nullptr (throws bad_alloc).
void* pool_acquire(size_t bytes, size_t* capacity);
// Returns a block from pool_acquire; it is cached or freed.
void pool_release(void* p, size_t capacity);

constexpr size_t kPoolMinBytes = size_t(1) << 20;  // below: the allocator's own reuse suffices
constexpr size_t kScratchPoolMinBytes = size_t(64) << 10;
constexpr size_t kMaxFreeBlocks = 4;
constexpr size_t kMaxFreeBytes = size_t(128) << 20;
constexpr size_t kMaxCachedBlock = size_t(64) << 20;

// Scratch memory for one call, 64-byte aligned: from the pool from
// kScratchPoolMinBytes (malloc maps blocks of 128 KiB and more afresh each
// time: page faults on every call), else the calling thread's own cached
// block when it is free and large enough (a batch of small products takes
// scratch once per item: malloc and free cost several percent of such an
// item), else from the allocator. Throws std::bad_alloc, so allocate before
// handing work to threads. Released on the thread that made it.
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  explicit ScratchBuffer(size_t bytes);
  ScratchBuffer(ScratchBuffer&& o) noexcept
      : p_(o.p_), pool_capacity_(o.pool_capacity_), thread_cached_(o.thread_cached_) {
    o.p_ = nullptr;
  }
  ScratchBuffer& operator=(ScratchBuffer&& o) noexcept;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer();
  void* data() const { return p_; }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }

 private:
  void release() noexcept;  // gives the block back (to the thread, the pool or the system)
  void* p_ = nullptr;
  size_t pool_capacity_ = 0;   // > 0: the block came from the pool
  bool thread_cached_ = false;  // the thread's cached block (see the constructor)
};

}  // namespace qgemm
