package io.whittle.tensor;

import java.lang.reflect.Field;
import sun.misc.Unsafe;

/**
 * Raw off-heap memory access. Java 17 has no finished foreign-memory API, and direct buffers stop at 2 GiB,
 * while a vocabulary embedding can be larger; this is the one class that touches {@link Unsafe}.
 */
final class UnsafeMemory {

    static final Unsafe UNSAFE;

    static {
        try {
            Field f = Unsafe.class.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            UNSAFE = (Unsafe) f.get(null);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    static final long FLOAT_ARRAY_BASE = Unsafe.ARRAY_FLOAT_BASE_OFFSET;
    static final long BYTE_ARRAY_BASE = Unsafe.ARRAY_BYTE_BASE_OFFSET;

    private UnsafeMemory() {
    }

    static long allocate(long bytes) {
        long address = UNSAFE.allocateMemory(Math.max(1, bytes));
        UNSAFE.setMemory(address, Math.max(1, bytes), (byte) 0);
        return address;
    }

    static void free(long address) {
        UNSAFE.freeMemory(address);
    }
}
