/*  Unit tests: common/herald_text — the growing string shared by the drivers,
    the template renderer and check-config's explanation. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "herald_text.h"

Test (text, appends_and_formats_past_any_initial_size)
{
    herald_text_t text = { 0 };
    herald_text_puts (&text, "Hello");
    herald_text_putc (&text, ',');
    herald_text_append (&text, " world!!", 7);
    cr_assert_str_eq (text.data, "Hello, world!");
    char big[5000];
    memset (big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    herald_text_printf (&text, " %s %d", big, 42);
    cr_assert_not (text.failed);
    cr_assert_eq (text.len, strlen ("Hello, world!") + 1 + 4999 + 3);
    cr_assert_eq (strlen (text.data), text.len, "always NUL-terminated");
    cr_assert (strstr (text.data, "x 42"));
    free (text.data);
}

Test (text, max_caps_the_size_and_failure_sticks)
{
    herald_text_t text = { .max = 8 };
    herald_text_puts (&text, "1234567");
    cr_assert_not (text.failed, "7 bytes and the NUL fit in 8");
    herald_text_putc (&text, '8');
    cr_assert (text.failed, "an 8th byte does not");
    cr_assert_str_eq (text.data, "1234567", "what fitted is kept");
    text.max = 0;
    herald_text_puts (&text, "more");
    herald_text_printf (&text, "%d", 9);
    cr_assert_str_eq (text.data, "1234567", "once failed, nothing more is added");
    free (text.data);
}

Test (text, null_text_is_ignored)
{
    herald_text_append (NULL, "abc", 3);
    herald_text_puts (NULL, "abc");
    herald_text_putc (NULL, 'a');
    herald_text_printf (NULL, "%s", "abc");
}
