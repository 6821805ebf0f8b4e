package io.whittle.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The allocator tree's accounting, limits, leak reports and errors, over a host-side fake of device memory. */
class DeviceAllocatorTest {

    /** Hands out fake addresses, refuses beyond a capacity, and fails on frees of unknown addresses. */
    static final class FakeMemory implements DeviceMemory {
        final long capacity;
        final Map<Long, Long> live = new HashMap<>();
        long next = 0x10000;
        long used;

        FakeMemory(long capacity) {
            this.capacity = capacity;
        }

        @Override
        public long allocate(long bytes) {
            if (used + bytes > capacity) {
                throw new DeviceOutOfMemoryException("fake device full", bytes, null);
            }
            long a = next;
            next += (bytes + 255) / 256 * 256;
            live.put(a, bytes);
            used += bytes;
            return a;
        }

        @Override
        public void free(long address) {
            Long b = live.remove(address);
            assertThat(b).as("free of a live address").isNotNull();
            used -= b;
        }

        @Override
        public String describe() {
            return "fake device used=" + used + " of " + capacity;
        }
    }

    @Test
    void tracksAllocatedAndPeakThroughTheTree() {
        FakeMemory mem = new FakeMemory(1 << 20);
        try (DeviceAllocator root = DeviceAllocator.root("cuda:0", mem, Long.MAX_VALUE)) {
            try (DeviceAllocator job = root.newChild("job", 10_000)) {
                DeviceBuffer a = job.allocate(4000, "a");
                DeviceBuffer b = job.allocate(3000, "b");
                assertThat(job.allocatedBytes()).isEqualTo(7000);
                assertThat(root.allocatedBytes()).isEqualTo(7000);
                a.close();
                a.close(); // idempotent
                DeviceBuffer c = job.allocate(2000, "c");
                assertThat(job.allocatedBytes()).isEqualTo(5000);
                assertThat(job.peakBytes()).isEqualTo(7000);
                b.close();
                c.close();
                assertThat(mem.live).isEmpty();
            }
            assertThat(root.allocatedBytes()).isZero();
            assertThat(root.peakBytes()).isEqualTo(7000);
        }
    }

    @Test
    void useAfterCloseNamesTheBuffer() {
        try (DeviceAllocator root = DeviceAllocator.root("cuda:0", new FakeMemory(1 << 20), Long.MAX_VALUE)) {
            DeviceBuffer b = root.allocate(64, "scores");
            assertThat(b.address(16)).isEqualTo(b.address() + 16);
            assertThatThrownBy(() -> b.address(65)).isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("scores");
            b.close();
            assertThatThrownBy(b::address).isInstanceOf(IllegalStateException.class)
                    .hasMessage("device buffer 'scores' (64 bytes) of cuda:0 has been closed");
        }
    }

    @Test
    void childLimitAndParentLimitRefuseWithTheNumbers() {
        try (DeviceAllocator root = DeviceAllocator.root("cuda:0", new FakeMemory(1 << 20), 5000)) {
            try (DeviceAllocator job = root.newChild("job-7", 3000)) {
                assertThatThrownBy(() -> job.allocate(3001, "weights")).isInstanceOf(DeviceOutOfMemoryException.class)
                        .hasMessageStartingWith("cuda:0/job-7 - allocating 2.93 KiB for weights would exceed the limit of 2.93 KiB")
                        .hasMessageContaining("allocated=0 B");
                try (DeviceBuffer other = root.allocate(4000, "other")) {
                    assertThatThrownBy(() -> job.allocate(2000, "activations")).isInstanceOf(DeviceOutOfMemoryException.class)
                            .hasMessageStartingWith("cuda:0 - allocating 1.95 KiB for activations would exceed the limit of 4.88 KiB")
                            .hasMessageContaining("allocated=3.91 KiB");
                    assertThat(job.allocatedBytes()).as("the child's reservation is rolled back").isZero();
                }
            }
        }
    }

    @Test
    void deviceOutOfMemoryCarriesAllocatorState() {
        FakeMemory mem = new FakeMemory(1000);
        try (DeviceAllocator root = DeviceAllocator.root("cuda:0", mem, Long.MAX_VALUE); DeviceBuffer a = root.allocate(600, "a")) {
            assertThatThrownBy(() -> root.allocate(600, "probs")).isInstanceOf(DeviceOutOfMemoryException.class)
                    .hasMessageContaining("cuda:0 - cannot allocate 600 B for probs: fake device full")
                    .hasMessageContaining("allocated=600 B").satisfies(e -> assertThat(((DeviceOutOfMemoryException) e).requestedBytes())
                            .isEqualTo(600));
            assertThat(root.allocatedBytes()).isEqualTo(600);
        }
    }

    @Test
    void closeWithLeaksFreesThemAndThenFails() {
        FakeMemory mem = new FakeMemory(1 << 20);
        DeviceAllocator root = DeviceAllocator.root("cuda:0", mem, Long.MAX_VALUE);
        DeviceAllocator job = root.newChild("job", Long.MAX_VALUE);
        DeviceBuffer kept = job.allocate(1024, "activations [4, 64]");
        job.allocate(100, "lse").close();
        assertThatThrownBy(job::close).isInstanceOf(IllegalStateException.class)
                .hasMessage("Device memory was leaked by cuda:0/job: 1.00 KiB still allocated in 1 buffer(s) [activations [4, 64] (1.00 KiB)]");
        assertThat(mem.live).as("leaked memory returned").isEmpty();
        assertThat(kept.isClosed()).isTrue();
        kept.close(); // no double free
        assertThatThrownBy(() -> job.allocate(8, "late")).isInstanceOf(IllegalStateException.class).hasMessageContaining("is closed");
        root.close(); // the child is gone and nothing is left
        assertThat(root.allocatedBytes()).isZero();
    }

    @Test
    void closingTheParentReportsOpenChildren() {
        FakeMemory mem = new FakeMemory(1 << 20);
        DeviceAllocator root = DeviceAllocator.root("cuda:0", mem, Long.MAX_VALUE);
        DeviceAllocator job = root.newChild("job", Long.MAX_VALUE);
        job.allocate(512, "x");
        assertThatThrownBy(root::close).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("Device memory was leaked by cuda:0")
                .hasMessageContaining("child cuda:0/job: Device memory was leaked by cuda:0/job: 512 B still allocated in 1 buffer(s) [x (512 B)]");
        assertThat(mem.live).isEmpty();
    }

    @Test
    void rejectsNonPositiveSizesAndLimits() {
        try (DeviceAllocator root = DeviceAllocator.root("cuda:0", new FakeMemory(100), Long.MAX_VALUE)) {
            assertThatThrownBy(() -> root.allocate(0, "empty")).isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("cuda:0 - cannot allocate 0 bytes for empty (must be positive)");
            assertThatThrownBy(() -> root.newChild("x", 0)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("limit");
        }
    }

    @Test
    void cachingSizeClassesWasteAtMostAQuarter() {
        long previous = 0;
        for (long bytes = 1; bytes < (1L << 32); bytes = bytes * 3 / 2 + 1) {
            long cls = CachingDeviceMemory.sizeClass(bytes);
            assertThat(cls).isGreaterThanOrEqualTo(bytes).isGreaterThanOrEqualTo(previous);
            assertThat(cls).isLessThanOrEqualTo(Math.max(512, bytes + bytes / 4 + 512));
            assertThat(cls % 512).isZero();
            previous = cls;
        }
    }

    @Test
    void bytesFormatForMessages() {
        assertThat(Bytes.format(512)).isEqualTo("512 B");
        assertThat(Bytes.format(1536)).isEqualTo("1.50 KiB");
        assertThat(Bytes.format(150L << 30)).isEqualTo("150.00 GiB");
    }
}
