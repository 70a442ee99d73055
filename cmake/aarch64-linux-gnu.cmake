# Cross-compiling for AArch64 Linux with Debian's g++-aarch64-linux-gnu, so
# that the NEON and dotprod kernels can be tested under qemu-user:
#   cmake -S . -B build/aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#     -DQGEMM_BUILD_PYTHON=OFF -DQGEMM_BUILD_TESTS=ON
#   qemu-aarch64 -cpu max build/aarch64/test_kernels
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Static executables run under qemu-user without an AArch64 sysroot (-L).
set(CMAKE_EXE_LINKER_FLAGS_INIT -static)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
