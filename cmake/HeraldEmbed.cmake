# Writes a file's bytes as a C array: cmake -DIN=FILE -DOUT=FILE.c -DNAME=SYMBOL -P HeraldEmbed.cmake
# gives `const char SYMBOL[] = { ..., 0 };` (NUL-terminated) and `const size_t SYMBOL_len`.
# Used for the admin page's stylesheet, script and icon (broker/admin_page/).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR bytes "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," array "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n    " array "${array}")
file(WRITE "${OUT}.tmp"
  "/*  Generated from ${IN} by cmake/HeraldEmbed.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const char ${NAME}[];\n"
  "extern const size_t ${NAME}_len;\n"
  "const char ${NAME}[] = {\n    ${array}0x00\n};\n"
  "const size_t ${NAME}_len = ${bytes};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
