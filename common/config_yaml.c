/*  config_yaml: YAML text -> a small node tree (mappings, sequences, scalars),
    each node with its line number, using libyaml events. It refuses what the
    schema walk in herald_config.c should never see: duplicate keys, non-string
    keys, aliases, more than one document, trees too deep or too large, and
    syntax and encoding errors (reported with their line).

    YAML is external input: nothing here asserts on it. Errors read
    "FILE:LINE: key.path: what is wrong" and parsing stops at the first one. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config_internal.h"

#define S_MAX_DEPTH     32              /* nesting of mappings and sequences */
#define S_MAX_KEYS      1024            /* entries in one mapping or sequence */
#define S_MAX_NODES     100000          /* nodes in one document */

/*  State of one config_yaml_parse call. */
typedef struct {
    const char *name;               /* file name for messages */
    char *err;                      /* first error, "FILE:LINE: path: what" */
    size_t errlen;
    yaml_parser_t parser;
    const char *text;               /* the YAML text, for reader error lines */
    size_t len;
    int nodes;                      /* nodes built so far */
} s_reader_t;

static int
s_fail (s_reader_t *self, int line, const char *path, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
s_fail (s_reader_t *self, int line, const char *path, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    config_vfail (self->name, self->err, self->errlen, line, path, fmt, args);
    va_end (args);
    return -1;
}

/* ------------------------------------------------------------------------ */
/*  Messages, shared with herald_config.c                                    */

int
config_vfail (const char *name, char *err, size_t errlen, int line, const char *path,
              const char *fmt, va_list args)
{
    if (errlen == 0)
        return -1;
    int n = snprintf (err, errlen, "%s:%d: %s: ", name, line, path && *path? path: "(top level)");
    if (n >= 0 && (size_t) n < errlen)
        vsnprintf (err + n, errlen - (size_t) n, fmt, args);
    return -1;
}

void
config_path_join (char *out, size_t size, const char *parent, const char *key)
{
    if (*parent)
        snprintf (out, size, "%s.%s", parent, key);
    else
        snprintf (out, size, "%s", key);
}

/* ------------------------------------------------------------------------ */
/*  Node tree                                                                */

void
config_node_destroy (config_node_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    config_node_t *self = *self_p;
    config_node_t *child = self->first;
    while (child) {
        config_node_t *next = child->next;
        config_node_destroy (&child);
        child = next;
    }
    free (self->key);
    free (self->text);
    free (self);
    *self_p = NULL;
}

const config_node_t *
config_node_child (const config_node_t *map, const char *key)
{
    if (!map || map->kind != CONFIG_NODE_MAP)
        return NULL;
    for (const config_node_t *child = map->first; child; child = child->next)
        if (strcmp (child->key, key) == 0)
            return child;
    return NULL;
}

static config_node_t *
s_node_new (s_reader_t *self, config_kind_t kind, const yaml_event_t *event, const char *path)
{
    if (++self->nodes > S_MAX_NODES) {
        s_fail (self, (int) event->start_mark.line + 1, path,
                "document too large (more than %d nodes)", S_MAX_NODES);
        return NULL;
    }
    config_node_t *node = calloc (1, sizeof *node);
    if (!node) {
        s_fail (self, (int) event->start_mark.line + 1, path, "out of memory");
        return NULL;
    }
    node->kind = kind;
    node->line = (int) event->start_mark.line + 1;
    return node;
}

/* ------------------------------------------------------------------------ */
/*  Building the node tree from libyaml events                               */

static int
s_syntax_error (s_reader_t *self)
{
    yaml_parser_t *parser = &self->parser;
    const char *problem = parser->problem? parser->problem: "invalid YAML";
    if (self->errlen == 0)
        return -1;
    if (parser->error == YAML_MEMORY_ERROR)
        snprintf (self->err, self->errlen, "%s: out of memory while reading YAML", self->name);
    else
    if (parser->error == YAML_READER_ERROR) {
        size_t line = 1;
        for (size_t i = 0; i < parser->problem_offset && i < self->len; i++)
            line += self->text[i] == '\n';
        snprintf (self->err, self->errlen, "%s:%zu: YAML syntax error: %s (at byte %zu)",
                  self->name, line, problem, parser->problem_offset);
    }
    else
    if (parser->context)
        snprintf (self->err, self->errlen, "%s:%zu:%zu: YAML syntax error: %s (%s at line %zu)",
                  self->name, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                  problem, parser->context, parser->context_mark.line + 1);
    else
        snprintf (self->err, self->errlen, "%s:%zu:%zu: YAML syntax error: %s",
                  self->name, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                  problem);
    return -1;
}

static int
s_next (s_reader_t *self, yaml_event_t *event)
{
    if (!yaml_parser_parse (&self->parser, event))
        return s_syntax_error (self);
    return 0;
}

static config_node_t *
s_build (s_reader_t *self, const yaml_event_t *event, int depth, const char *path);

/*  Reads the entries of a mapping or sequence whose start event was just seen. */
static int
s_build_children (s_reader_t *self, config_node_t *node, int depth, const char *path)
{
    yaml_event_t event;
    yaml_event_type_t end = node->kind == CONFIG_NODE_MAP? YAML_MAPPING_END_EVENT: YAML_SEQUENCE_END_EVENT;
    while (true) {
        if (s_next (self, &event))
            return -1;
        if (event.type == end) {
            yaml_event_delete (&event);
            return 0;
        }
        if (node->count >= S_MAX_KEYS) {
            yaml_event_delete (&event);
            return s_fail (self, node->line, path, "too many entries (at most %d)", S_MAX_KEYS);
        }
        char *key = NULL;
        int key_line = 0;
        char child_path[CONFIG_PATH_LEN];
        snprintf (child_path, sizeof child_path, "%s", path);
        if (node->kind == CONFIG_NODE_MAP) {
            key_line = (int) event.start_mark.line + 1;
            if (event.type != YAML_SCALAR_EVENT) {
                yaml_event_delete (&event);
                return s_fail (self, key_line, path, "mapping keys must be plain strings");
            }
            const char *text = (const char *) event.data.scalar.value;
            if (strlen (text) != event.data.scalar.length || *text == '\0') {
                yaml_event_delete (&event);
                return s_fail (self, key_line, path, "empty key or key with a NUL byte");
            }
            config_path_join (child_path, sizeof child_path, path, text);
            const config_node_t *first = config_node_child (node, text);
            if (first) {
                yaml_event_delete (&event);
                return s_fail (self, key_line, child_path, "duplicate key (first at line %d)",
                               first->line);
            }
            key = strdup (text);
            yaml_event_delete (&event);
            if (!key)
                return s_fail (self, key_line, path, "out of memory");
            if (s_next (self, &event)) {
                free (key);
                return -1;
            }
        }
        config_node_t *child = s_build (self, &event, depth + 1, child_path);
        yaml_event_delete (&event);
        if (!child) {
            free (key);
            return -1;
        }
        if (key) {
            child->key = key;
            child->line = key_line;
        }
        if (node->last)
            node->last->next = child;
        else
            node->first = child;
        node->last = child;
        node->count++;
    }
}

/*  Builds the node that starts with event (which the caller deletes). */
static config_node_t *
s_build (s_reader_t *self, const yaml_event_t *event, int depth, const char *path)
{
    int line = (int) event->start_mark.line + 1;
    if (depth > S_MAX_DEPTH) {
        s_fail (self, line, path, "nested too deeply (more than %d levels)", S_MAX_DEPTH);
        return NULL;
    }
    config_node_t *node = NULL;
    switch (event->type) {
        case YAML_SCALAR_EVENT: {
            node = s_node_new (self, CONFIG_NODE_SCALAR, event, path);
            if (!node)
                return NULL;
            const char *text = (const char *) event->data.scalar.value;
            size_t len = event->data.scalar.length;
            if (event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
            && (strcmp (text, "~") == 0 || strcmp (text, "null") == 0
                || strcmp (text, "Null") == 0 || strcmp (text, "NULL") == 0))
                len = 0;        /* YAML null: an empty value */
            node->text = malloc (len + 1);
            if (!node->text) {
                config_node_destroy (&node);
                s_fail (self, line, path, "out of memory");
                return NULL;
            }
            memcpy (node->text, text, len);
            node->text[len] = '\0';
            node->len = len;
            return node;
        }
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            node = s_node_new (self, event->type == YAML_MAPPING_START_EVENT? CONFIG_NODE_MAP:
                               CONFIG_NODE_SEQ, event, path);
            if (!node)
                return NULL;
            if (s_build_children (self, node, depth, path)) {
                config_node_destroy (&node);
                return NULL;
            }
            return node;
        case YAML_ALIAS_EVENT:
            s_fail (self, line, path, "YAML aliases (*name) are not supported: write the value out");
            return NULL;
        default:
            s_fail (self, line, path, "unexpected YAML structure");
            return NULL;
    }
}

int
config_yaml_parse (const char *text, size_t len, const char *name, char *err, size_t errlen,
                   config_node_t **root)
{
    s_reader_t reader = { .name = name, .err = err, .errlen = errlen };
    s_reader_t *self = &reader;
    *root = NULL;
    if (!yaml_parser_initialize (&self->parser)) {
        snprintf (self->err, self->errlen, "%s: out of memory", self->name);
        return -1;
    }
    yaml_parser_set_input_string (&self->parser, (const unsigned char *) text, len);
    self->text = text;
    self->len = len;
    int rc = -1;
    yaml_event_t event;
    bool have_event = false;
    int docs = 0;
    while (true) {
        if (s_next (self, &event))
            break;
        have_event = true;
        if (event.type == YAML_STREAM_END_EVENT) {
            rc = 0;
            break;
        }
        if (event.type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            s_fail (self, (int) event.start_mark.line + 1, "",
                    "only one YAML document is allowed (found a second '---')");
            break;
        }
        if (event.type == YAML_MAPPING_START_EVENT || event.type == YAML_SEQUENCE_START_EVENT
        ||  event.type == YAML_SCALAR_EVENT || event.type == YAML_ALIAS_EVENT) {
            *root = s_build (self, &event, 0, "");
            if (!*root)
                break;
        }
        yaml_event_delete (&event);
        have_event = false;
    }
    if (have_event)
        yaml_event_delete (&event);
    yaml_parser_delete (&self->parser);
    if (rc)
        config_node_destroy (root);
    return rc;
}
