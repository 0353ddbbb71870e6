"""test_man_pages: the man pages in man/ are well-formed roff and say what the
programs and the configuration schema say.

  - groff -man -ww reports no warning for any page;
  - each page's .TH version is the programs' --version;
  - herald(1), herald-broker(8), herald-worker(8): every command of
    `herald --help`, every option of each --help (short and long together, as
    "-c, --config"), every exit status and every HERALD_* variable is in the
    page; every exit status the page lists is one the program's --help lists;
  - herald.yaml(5): every key of the schema table in common/herald_config.c
    has an entry (channels.* written channels.NAME, events.* events.TYPE,
    workers.* workers.CHANNEL, headers.* headers.HEADER; security.* too)
    saying its compiled-in default and whether SIGHUP applies it ("Reload:
    live." or "Reload: restart.", as the table in common/config_reload.c
    says), and the page documents no key the schema does not have."""

import os
import re
import subprocess

import harness

MAN_DIR = os.path.join(harness.SOURCE_DIR, "man")
CONFIG_SOURCE = os.path.join(harness.SOURCE_DIR, "common", "herald_config.c")
RELOAD_SOURCE = os.path.join(harness.SOURCE_DIR, "common", "config_reload.c")
CONTAINERS = ("S_MAP", "S_DICT", "S_CHANNEL", "S_EVENT")
PLACEHOLDERS = (("channels.*", "channels.NAME"), ("events.*", "events.TYPE"),
                ("workers.*", "workers.CHANNEL"), ("headers.*", "headers.HEADER"))


def render(page):
    """The page as plain text: long lines, no hyphenation, no overstrike."""
    r = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", "-rLL=250n", "-rHY=0",
                        os.path.join(MAN_DIR, page)], capture_output=True, text=True)
    if r.returncode != 0:
        raise harness.TestFailure("groff cannot render %s: %s" % (page, r.stderr))
    return r.stdout


def section(text, name):
    """The body of a top-level section (a line in capitals at column 0)."""
    m = re.search(r"^%s\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)" % re.escape(name), text, re.M | re.S)
    return m.group(1) if m else ""


def help_text(argv):
    r = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise harness.TestFailure("`%s --help` exited %d" % (" ".join(argv), r.returncode))
    return r.stdout


def exit_codes(text):
    """Exit statuses named after the word Exit in a --help text."""
    m = re.search(r"^Exit (?:status|codes)\b(.*)", text, re.M | re.S)
    return set(re.findall(r"(?<![\w.-])(0|6[4-9]|7[0-9])(?![\w-])", m.group(1))) if m else set()


def check_program(t, page, helps):
    """helps: {label: --help text} of the programs and commands the page documents."""
    text = render(page)
    flat = re.sub(r"\s+", " ", text)
    codes_help = set()
    for label, help in helps.items():
        for option in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help))):
            if option in ("--help", "--version"):
                continue
            t.check(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(option), flat),
                    "%s: %s's option %s is documented" % (page, label, option))
        for short, long in re.findall(r"^\s+(-[a-zA-Z]), (--[a-z][a-z0-9-]*)", help, re.M):
            t.check("%s, %s" % (short, long) in flat, "%s: %s's %s, %s is documented" % (page, label, short, long))
        for var in sorted(set(re.findall(r"HERALD_[A-Z_]+", help))):
            t.check(var in section(text, "ENVIRONMENT"), "%s: %s's %s is under ENVIRONMENT" % (page, label, var))
        codes_help |= exit_codes(help)
    # a short .TP tag shares its line with the text: "       64     Usage error."
    listed = set(re.findall(r"^ {7}(\d+)(?: {2,}|$)", section(text, "EXIT STATUS"), re.M))
    t.check(codes_help and codes_help == listed,
            "%s: EXIT STATUS lists the statuses of --help, no more" % page,
            "--help: %s, page: %s" % (sorted(codes_help, key=int), sorted(listed, key=int)))
    return text


def schema_rows():
    """(pattern, type, fallback or None) of each row of s_schema."""
    with open(CONFIG_SOURCE) as f:
        source = f.read()
    table = source.split("static const s_row_t s_schema[] = {", 1)[1].split("\n};", 1)[0]
    rows = []
    for pattern, kind, rest in re.findall(r'\{ \.pattern = "([^"]+)", \.type = (S_[A-Z]+)([^{}]*)\}', table):
        fallback = re.search(r'\.fallback = "([^"]*)"', rest)
        rows.append((pattern, kind, fallback.group(1) if fallback else None))
    return rows


def reload_classes():
    """{documented key: "live" or "restart"} of the reload table."""
    with open(RELOAD_SOURCE) as f:
        source = f.read()
    return {documented_key(p): c.lower() for p, c in re.findall(r'\{ "([^"]+)",\s+S_(LIVE|RESTART) \}', source)}


def documented_key(pattern):
    for wildcard, name in PLACEHOLDERS:
        pattern = pattern.replace(wildcard, name)
    return pattern


def check_config_page(t):
    text = render("herald.yaml.5")
    entries = {}            # key -> its paragraph
    for m in re.finditer(r"^ {7}((?:broker|channels|events|workers|security)\.[A-Za-z_.]+)\n(.*?)(?=^ {7}\S|^\S|\Z)",
                         text, re.M | re.S):
        entries[m.group(1)] = re.sub(r"\s+", " ", m.group(2))
    rows = [(documented_key(p), kind, fallback) for p, kind, fallback in schema_rows() if kind not in CONTAINERS]
    t.require(len(rows) > 40, "the schema table of %s is read (%d keys)" % (CONFIG_SOURCE, len(rows)))
    classes = reload_classes()
    t.require(len(classes) > 40, "the reload table of %s is read (%d keys)" % (RELOAD_SOURCE, len(classes)))
    for key, kind, fallback in rows:
        if not t.check(key in entries, "herald.yaml(5) documents %s" % key):
            continue
        t.check(classes.get(key) and "Reload: %s." % classes[key] in entries[key],
                "herald.yaml(5): %s says Reload: %s" % (key, classes.get(key)), entries[key][-200:])
        if fallback is not None:
            t.check(re.search(r"Default: %s(?![\w.])" % re.escape(fallback), entries[key]),
                    "herald.yaml(5): %s says its default, %s" % (key, fallback), entries[key])
    known = {key for key, _, _ in rows}
    extra = sorted(set(entries) - known)
    t.check(not extra, "herald.yaml(5) documents no key the schema lacks", extra)


def body(t):
    pages = sorted(p for p in os.listdir(MAN_DIR) if re.search(r"\.[1-8]$", p))
    t.check(pages == ["herald-broker.8", "herald-worker.8", "herald.1", "herald.yaml.5"],
            "man/ has herald(1), herald-broker(8), herald-worker(8), herald.yaml(5)", pages)

    version = subprocess.run([harness.binary("herald"), "--version"], capture_output=True,
                             text=True).stdout.split()[-1]
    for page in pages:
        r = subprocess.run(["groff", "-man", "-ww", "-z", "-t", os.path.join(MAN_DIR, page)],
                           capture_output=True, text=True)
        t.check(r.returncode == 0 and not r.stderr.strip(), "groff -man -ww: %s has no warning" % page,
                r.stderr)
        with open(os.path.join(MAN_DIR, page)) as f:
            th = re.search(r'^\.TH .*"Herald (\d[^"]*)"', f.read(), re.M)
        t.check(th and th.group(1) == version, "%s is for Herald %s (--version)" % (page, version),
                th.group(0) if th else "no .TH")

    herald = harness.binary("herald")
    top = help_text([herald])
    commands = re.findall(r"^  ([a-z][a-z-]+) ", top.split("Commands:", 1)[1], re.M)
    text = check_program(t, "herald.1", dict([("herald", top)] +
                                              [("herald " + c, help_text([herald, c])) for c in commands]))
    for command in commands:
        t.check(re.search(r"^ {3}herald %s$" % re.escape(command), text, re.M),
                "herald.1 has a section for herald %s" % command)
    check_program(t, "herald-broker.8", {"herald-broker": help_text([harness.binary("herald-broker")])})
    check_program(t, "herald-worker.8", {"herald-worker": help_text([harness.binary("herald-worker")])})
    check_config_page(t)


if __name__ == "__main__":
    harness.Test("man_pages", budget=60).run(body)
