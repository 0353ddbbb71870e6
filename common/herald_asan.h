/*  herald_asan: lets a custom allocator tell AddressSanitizer which bytes
    of its pool are handed out, so that a read or write past one allocation
    is reported as it would be for malloc. Without ASan (GCC's
    -fsanitize=address defines __SANITIZE_ADDRESS__, clang has
    __has_feature) the calls compile to nothing. Header-only. */
#ifndef HERALD_ASAN_H
#define HERALD_ASAN_H

#include <stddef.h>

#if defined (__SANITIZE_ADDRESS__)
#   define HERALD_ASAN 1
#elif defined (__has_feature)
#   if __has_feature (address_sanitizer)
#       define HERALD_ASAN 1
#   endif
#endif

#ifdef HERALD_ASAN
#   include <sanitizer/asan_interface.h>
#   define HERALD_ASAN_REDZONE 16   /* bytes a pool leaves poisoned after each allocation */
#else
#   define HERALD_ASAN_REDZONE 0
#endif

/*  Marks size bytes at p as not allocated: any access is reported. */
static inline void
herald_asan_poison (const volatile void *p, size_t size)
{
#ifdef HERALD_ASAN
    ASAN_POISON_MEMORY_REGION (p, size);
#else
    (void) p;
    (void) size;
#endif
}

/*  Marks size bytes at p as allocated. */
static inline void
herald_asan_unpoison (const volatile void *p, size_t size)
{
#ifdef HERALD_ASAN
    ASAN_UNPOISON_MEMORY_REGION (p, size);
#else
    (void) p;
    (void) size;
#endif
}

#endif
