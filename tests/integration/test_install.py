"""test_install: `cmake --install` gives a library and a daemon a stranger can use.

Installs the build into a temporary prefix (cmake --install BUILD --prefix TMP),
then, as a shop developer or an operator would:

  - libherald.so.1 has the SONAME libherald.so.1 and exports exactly the
    functions herald.h declares (nm -D), nothing of herald_proto/herald_common;
  - the README's C program (the same text as examples/c/publish_order.c) builds
    with `pkg-config --cflags --libs herald` against the shared library, with
    `pkg-config --static` against libherald.a, and with the CMake project
    examples/c (find_package(Herald), Herald::herald and Herald::herald_static);
    each build publishes an order to the installed herald-broker and gets the
    ACK, and a NACK makes the program exit non-zero with the reason;
  - `systemd-analyze verify` accepts the installed units (their binaries and
    man pages are the installed ones), systemd-sysusers and systemd-tmpfiles
    accept the sysusers.d and tmpfiles.d entries in a scratch root, and the
    installed configuration passes `herald check-config` with every path
    absolute, under the prefix.

Environment: HERALD_BUILD_DIR (the build to install; default: HERALD_BIN_DIR/..).
In a sanitizer build (HERALD_SANITIZE=ON in its CMakeCache.txt) the programs
are built with the same -fsanitize flags, as the installed library needs."""

import os
import re
import shlex
import shutil
import signal
import subprocess

import harness

BUILD_DIR = os.environ.get("HERALD_BUILD_DIR") or os.path.dirname(harness.BIN_DIR)
CC = os.environ.get("CC") or "cc"


def run(t, argv, what, env=None, cwd=None, timeout=120):
    """Runs argv; returns CompletedProcess (text). env: variables added."""
    full_env = dict(os.environ, **env) if env else None
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=cwd,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise harness.TestFailure("%s: `%s` did not finish within %ss" % (what, " ".join(argv), timeout)) from e
    except FileNotFoundError as e:
        raise harness.TestFailure("%s: %s not found" % (what, argv[0])) from e


def output(r):
    return "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout[-1500:], r.stderr[-1500:])


def cache_value(name):
    """A variable of the build's CMakeCache.txt, or None."""
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"^%s:[A-Z]+=(.*)$" % re.escape(name), line.rstrip("\n"))
            if m:
                return m.group(1)
    return None


def readme_program():
    """The ```c block of README.md's "Publishing from code" section."""
    with open(os.path.join(harness.SOURCE_DIR, "README.md")) as f:
        text = f.read()
    section = text.split("### Publishing from code", 1)[1]
    m = re.search(r"```c\n(.*?)```", section, re.S)
    return m.group(1) if m else ""


def header_functions(path):
    """Names of the functions herald.h declares (each marked HERALD_EXPORT)."""
    with open(path) as f:
        return set(re.findall(r"^HERALD_EXPORT [^\n]*\n\s+(herald_\w+) \(", f.read(), re.M))


def dynamic_symbols(path):
    """Defined dynamic symbols of a shared library (version node names dropped)."""
    r = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True)
    names = set()
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] != "A":
            names.add(parts[2].split("@")[0])
    return names


def needed(path):
    r = subprocess.run(["readelf", "-d", path], capture_output=True, text=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)


def publish_with(t, h, program, what, env=None):
    """Runs a built publish_order against the broker; returns its event id."""
    r = run(t, [program, h.endpoint("producers")], what, env=env, timeout=30)
    m = re.match(r"stored as (\S+)", r.stdout)
    t.check(r.returncode == 0 and m, "%s: publishes and gets the ACK" % what, output(r))
    return m.group(1) if m else None


def body(t):
    sanitize = (cache_value("HERALD_SANITIZE") or "OFF").upper() in ("ON", "TRUE", "1", "YES")
    san_flags = ["-fsanitize=address,undefined"] if sanitize else []
    libdir_rel = cache_value("CMAKE_INSTALL_LIBDIR") or "lib"

    h = t.deployment()
    prefix = os.path.join(h.tmp, "prefix")
    r = run(t, ["cmake", "--install", BUILD_DIR, "--prefix", prefix], "cmake --install")
    t.require(r.returncode == 0, "cmake --install %s --prefix %s" % (BUILD_DIR, prefix), output(r))
    libdir = os.path.join(prefix, libdir_rel)
    bindir = os.path.join(prefix, "bin")
    t.note("installed into %s%s" % (prefix, " (sanitizer build)" if sanitize else ""))

    expected = ["bin/herald", "bin/herald-broker", "bin/herald-worker",
                libdir_rel + "/libherald.so.1", libdir_rel + "/libherald.so", libdir_rel + "/libherald.a",
                "include/herald.h", libdir_rel + "/pkgconfig/herald.pc",
                libdir_rel + "/cmake/Herald/HeraldConfig.cmake",
                libdir_rel + "/cmake/Herald/HeraldConfigVersion.cmake",
                "share/man/man1/herald.1", "share/man/man5/herald.yaml.5",
                "share/man/man8/herald-broker.8", "share/man/man8/herald-worker.8",
                "lib/systemd/system/herald-broker.service", "lib/systemd/system/herald-worker@.service",
                "lib/sysusers.d/herald.conf", "lib/tmpfiles.d/herald.conf",
                "etc/herald/herald.yaml", "etc/herald/templates/order_confirmed.txt"]
    missing = [p for p in expected if not os.path.exists(os.path.join(prefix, p))]
    t.require(not missing, "the install has binaries, libraries, header, herald.pc, CMake "
            "package, man pages, units, sysusers/tmpfiles entries and configuration", missing)
    installed = set()
    for top, dirs, files in os.walk(prefix):
        installed.update(os.path.join(top, name) for name in files)
        installed.update(os.path.join(top, name) for name in dirs if os.path.islink(os.path.join(top, name)))
    with open(os.path.join(BUILD_DIR, "install_manifest.txt")) as f:
        manifest = set(f.read().split("\n")) - {""}
    t.check(installed == manifest, "install_manifest.txt lists every file installed (%d)" % len(installed),
            "not listed: %s\nlisted, absent: %s" % (sorted(installed - manifest), sorted(manifest - installed)))

    # -- the shared library: SONAME and exports
    shared = os.path.join(libdir, "libherald.so.1")
    r = run(t, ["readelf", "-d", shared], "readelf")
    sonames = re.findall(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", r.stdout)
    t.check(sonames == ["libherald.so.1"], "SONAME is libherald.so.1 (readelf -d)", sonames)
    r = run(t, ["objdump", "-p", shared], "objdump")
    t.check(re.search(r"^\s*SONAME\s+libherald\.so\.1$", r.stdout, re.M),
            "objdump -p agrees: SONAME libherald.so.1", r.stdout[:600])
    api = header_functions(os.path.join(prefix, "include", "herald.h"))
    exported = dynamic_symbols(shared)
    t.check(len(api) >= 10 and exported == api,
            "nm -D: libherald.so.1 exports exactly the %d functions of herald.h" % len(api),
            "not in herald.h: %s\nin herald.h, not exported: %s"
            % (sorted(exported - api), sorted(api - exported)))
    t.check(all(name.startswith("herald_") for name in exported), "every export starts with herald_",
            sorted(exported))

    # -- a real broker: the installed one
    broker = h.spawn("broker", [os.path.join(bindir, "herald-broker"), "-c", h.config])
    h.wait_broker_ready(broker)

    # -- the README's program, built with pkg-config
    program = readme_program()
    with open(os.path.join(harness.SOURCE_DIR, "examples", "c", "publish_order.c")) as f:
        example = f.read()
    t.check(program == example, "README's C program is examples/c/publish_order.c, verbatim",
            "README block of %d bytes, example of %d bytes" % (len(program), len(example)))
    src = os.path.join(h.tmp, "publish_order.c")
    with open(src, "w") as f:
        f.write(program)

    pc_env = {"PKG_CONFIG_PATH": os.path.join(libdir, "pkgconfig")}
    r = run(t, ["pkg-config", "--cflags", "--libs", "herald"], "pkg-config", env=pc_env)
    t.require(r.returncode == 0, "pkg-config --cflags --libs herald", output(r))
    flags = shlex.split(r.stdout)
    t.check("-lherald" in flags and not [f for f in flags if f in ("-lzmq", "-ljansson")],
            "pkg-config --libs herald: -lherald alone (libzmq and jansson are the library's business)",
            flags)
    prog_shared = os.path.join(h.tmp, "publish_order_shared")
    r = run(t, [CC, "-Wall", "-Wextra", "-Werror"] + san_flags + [src, "-o", prog_shared] + flags,
            "cc (pkg-config)")
    t.require(r.returncode == 0, "the README program builds with pkg-config --cflags --libs herald",
              output(r))
    t.check("libherald.so.1" in needed(prog_shared), "it links libherald.so.1 (readelf NEEDED)",
            needed(prog_shared))
    run_env = {"LD_LIBRARY_PATH": libdir}
    first_id = publish_with(t, h, prog_shared, "pkg-config build (libherald.so.1)", env=run_env)
    r = run(t, [os.path.join(bindir, "herald"), "track", "-c", h.config, first_id or "-"],
            "herald track")
    t.check(r.returncode == 0 and (first_id or "?") in r.stdout, "the broker stored that event (herald track)",
            output(r))

    r = run(t, ["pkg-config", "--static", "--libs", "herald"], "pkg-config --static", env=pc_env)
    t.require(r.returncode == 0, "pkg-config --static --libs herald", output(r))
    static_libs = []
    for flag in shlex.split(r.stdout):
        static_libs += ["-Wl,-Bstatic", "-lherald", "-Wl,-Bdynamic"] if flag == "-lherald" else [flag]
    r2 = run(t, ["pkg-config", "--cflags", "herald"], "pkg-config --cflags", env=pc_env)
    prog_static = os.path.join(h.tmp, "publish_order_static")
    r = run(t, [CC] + san_flags + [src, "-o", prog_static] + shlex.split(r2.stdout) + static_libs,
            "cc (pkg-config --static)")
    t.require(r.returncode == 0, "it builds against libherald.a with pkg-config --static", output(r))
    t.check(not [n for n in needed(prog_static) if n.startswith("libherald")],
            "that program does not need libherald.so", needed(prog_static))
    second_id = publish_with(t, h, prog_static, "pkg-config --static build (libherald.a)")
    t.check(second_id == first_id, "same order again: ACKed as the first event (idempotent)",
            "%r vs %r" % (second_id, first_id))

    # -- the CMake project of examples/c: find_package(Herald)
    cmake_build = os.path.join(h.tmp, "cmake-example")
    configure = ["cmake", "-S", os.path.join(harness.SOURCE_DIR, "examples", "c"), "-B", cmake_build,
                 "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_C_COMPILER=" + CC]
    if san_flags:
        configure += ["-DCMAKE_C_FLAGS=" + " ".join(san_flags)]
    r = run(t, configure, "cmake configure (example)")
    t.require(r.returncode == 0, "examples/c configures: find_package(Herald) finds the install", output(r))
    r = run(t, ["cmake", "--build", cmake_build], "cmake build (example)")
    t.require(r.returncode == 0, "examples/c builds (Herald::herald, Herald::herald_static)", output(r))
    cm_shared = os.path.join(cmake_build, "publish_order")
    cm_static = os.path.join(cmake_build, "publish_order_static")
    t.check("libherald.so.1" in needed(cm_shared), "Herald::herald links libherald.so.1", needed(cm_shared))
    t.check(not [n for n in needed(cm_static) if n.startswith("libherald")],
            "Herald::herald_static links libherald.a", needed(cm_static))
    publish_with(t, h, cm_shared, "CMake build, Herald::herald")
    publish_with(t, h, cm_static, "CMake build, Herald::herald_static")

    # -- a NACK: the broker now also requires customer.name, which the order lacks
    code = h.kill(broker, signal.SIGTERM)
    t.check(code == 0, "the installed broker stops cleanly on SIGTERM", "exit %s" % code)
    h.write_config(events=[dict(harness.ORDER_CONFIRMED,
                                required=harness.ORDER_CONFIRMED["required"] + ["customer.name"])])
    broker = h.spawn("broker", [os.path.join(bindir, "herald-broker"), "-c", h.config])
    h.wait_broker_ready(broker)
    r = run(t, [prog_shared, h.endpoint("producers")], "NACK", env=run_env, timeout=30)
    t.check(r.returncode != 0 and "customer.name" in r.stderr and not r.stdout,
            "a refused order: the program exits non-zero and prints the NACK's reason", output(r))

    # -- systemd: the units, sysusers.d and tmpfiles.d
    unitdir = os.path.join(prefix, "lib", "systemd", "system")
    analyze = shutil.which("systemd-analyze")
    t.require(analyze, "systemd-analyze is installed (Debian package systemd)")
    for unit in ("herald-broker.service", "herald-worker@email.service"):
        # --man=yes (the default) runs man for each Documentation=man: link,
        # so MANPATH makes it look at the installed pages.
        r = run(t, [analyze, "verify", os.path.join(unitdir, unit)], "systemd-analyze",
                env={"MANPATH": os.path.join(prefix, "share", "man"), "SYSTEMD_LOG_COLOR": "0"})
        t.check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
                "systemd-analyze verify %s: no error, no warning" % unit, output(r))
    units = {}
    for name in ("herald-broker.service", "herald-worker@.service"):
        with open(os.path.join(unitdir, name)) as f:
            units[name] = f.read()
    config_path = os.path.join(prefix, "etc", "herald", "herald.yaml")
    broker_unit = units["herald-broker.service"]
    for line in ("Type=notify", "RestartPreventExitStatus=78", "ExecReload=/bin/kill -HUP $MAINPID",
                 "ExecStartPre=%s/herald check-config -c %s" % (bindir, config_path),
                 "ExecStart=%s/herald-broker -c %s" % (bindir, config_path),
                 "User=herald", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "ReadWritePaths=%s/var/lib/herald" % prefix):
        t.check(line in broker_unit.splitlines(), "herald-broker.service: %s" % line)
    t.check("ExecStart=%s/herald-worker -c %s --channel %%i" % (bindir, config_path)
            in units["herald-worker@.service"].splitlines(),
            "herald-worker@.service runs the installed herald-worker for channel %i")

    if os.geteuid() == 0:
        root = os.path.join(h.tmp, "root")
        os.makedirs(os.path.join(root, "etc"))
        r = run(t, ["systemd-sysusers", "--root=" + root, os.path.join(prefix, "lib/sysusers.d/herald.conf")],
                "systemd-sysusers")
        with open(os.path.join(root, "etc", "passwd")) as f:
            passwd = f.read()
        t.check(r.returncode == 0 and re.search(r"^herald:x:\d+:\d+:", passwd, re.M),
                "systemd-sysusers creates the herald user from sysusers.d/herald.conf", output(r))
        r = run(t, ["systemd-tmpfiles", "--create", "--root=" + root,
                    os.path.join(prefix, "lib/tmpfiles.d/herald.conf")], "systemd-tmpfiles")
        uid = int(re.search(r"^herald:x:(\d+):", passwd, re.M).group(1)) if "herald:x:" in passwd else None
        state = root + os.path.join(prefix, "var/lib/herald")
        made = {d: os.stat(os.path.join(state, d)) for d in ("", "outbox/email", "outbox/inventory", "outbox/courier")
                if os.path.isdir(os.path.join(state, d))}
        t.check(r.returncode == 0 and len(made) == 4 and not r.stderr.strip()
                and all(st.st_uid == uid and st.st_mode & 0o7777 == 0o750 for st in made.values()),
                "systemd-tmpfiles makes the state directory and the outboxes, herald's, mode 0750",
                output(r) + "\nmade: %s" % {d: (st.st_uid, oct(st.st_mode)) for d, st in made.items()})
    else:
        t.note("not root: sysusers.d and tmpfiles.d entries not applied (they chown)")

    # -- the installed configuration
    r = run(t, [os.path.join(bindir, "herald"), "check-config", "-c", config_path], "check-config")
    t.check(r.returncode == 0, "the installed herald.yaml passes herald check-config", output(r))
    with open(config_path) as f:
        text = f.read()
    paths = re.findall(r"^\s*(?:store|dir|text_template|html_template):\s*(\S+)", text, re.M)
    bad = [p for p in paths if not p.startswith(prefix + "/")]
    t.check(len(paths) == 6 and not bad, "its %d paths are absolute, under the prefix" % len(paths), bad or paths)
    templates = [p for p in paths if p.endswith((".txt", ".html"))]
    t.check(len(templates) == 2 and all(os.path.isfile(p) for p in templates),
            "the templates it names are installed", templates)


if __name__ == "__main__":
    harness.Test("install", budget=240).run(body)
