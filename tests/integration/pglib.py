"""pglib: a real PostgreSQL server for a test, started and stopped by the test.

    pg = pglib.Postgres("two-brokers")     # initdb into a temporary directory
    pg.start()                             # on a free 127.0.0.1 port; waits until it answers
    url = pg.url()                         # postgresql://herald@127.0.0.1:PORT/herald
    env = pg.env()                         # {"PGPASSWORD": ...}: what a broker needs
    pg.sql("SELECT count(*) FROM herald.events")   # -> "42"
    pg.kill()                              # SIGKILL by PID (the postmaster's process group)
    pg.start()                             # again, on the same port and data
    pg.cleanup()                           # stops it, removes the directory

    sb = pg.standby("sb", "b")             # pg_basebackup -R from pg (running): a streaming
    sb.start()                             #   standby, application_name b, its own port and dir
    pg.sql("ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (b)'"); pg.reload()
    pglib.url([pg, sb])                    # both hosts, target_session_attrs=read-write
    sb.promote()                           # SELECT pg_promote(): waits until it is a primary

How it runs: PostgreSQL refuses to run as root, so initdb and postgres run as
the `postgres` user that Debian's `postgresql` package creates (scripts/deps.sh
installs it), through subprocess's user= (setuid in the child, no runuser or
su: the PID we hold is the postmaster's own). The data directory, the Unix
socket directory (-k, so nothing touches /var/run/postgresql) and the password
file live in a directory of their own, owned by postgres (the test's own
temporary directory is root's, mode 0700). The superuser is `herald`, with a
password (SCRAM): the broker gets it from PGPASSWORD, as in production, never
from the YAML. Debian's own cluster and its service on port 5432 are not used.

Stopping is by PID: SIGTERM (smart), SIGINT (fast), or SIGKILL of the
postmaster's process group (its backends too, as a crashed host would).
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import harness

PASSWORD = "herald-test-secret"


def bindir():
    """The server's programs: pg_config --bindir (libpq-dev), else the newest
    /usr/lib/postgresql/*/bin."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        path = out.stdout.strip()
        if out.returncode == 0 and os.path.exists(os.path.join(path, "postgres")):
            return path
    except (OSError, subprocess.TimeoutExpired):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/deps.sh (Debian's postgresql)")
    return os.path.dirname(found[-1])


def _group_alive(pgid):
    """True while a process of group pgid runs (zombies, which a container's
    init may never reap, do not count: they hold no port nor memory)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


def free_port():
    return harness.free_port()


class Postgres:
    def __init__(self, name, settings=None, init=True):
        """init: initdb a new cluster; False: an empty directory for
        standby() to fill."""
        self.name = name
        self.bin = bindir()
        self.user = pwd.getpwnam("postgres")
        base = os.environ.get("HERALD_TEST_TMP") or None
        self.dir = tempfile.mkdtemp(prefix="herald-pg-%s-" % name, dir=base)
        os.chmod(self.dir, 0o700)
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.proc = None
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "fsync": "on",
            "synchronous_commit": "on",
            "max_connections": "60",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
            "deadlock_timeout": "200ms",
        }
        self.settings.update(settings or {})
        # a None setting is not passed on the command line (so that ALTER
        # SYSTEM and a reload can change it: the command line wins over both)
        self.settings = {k: v for k, v in self.settings.items() if v is not None}
        os.makedirs(self.sock)
        os.chown(self.sock, self.user.pw_uid, self.user.pw_gid)
        if init:
            self._initdb()

    # -- running as postgres

    def _as_postgres(self, argv, **kw):
        return subprocess.run(argv, user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[],
                              cwd=self.dir, capture_output=True, text=True, **kw)

    def _initdb(self):
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        os.chmod(pwfile, 0o600)
        r = self._as_postgres([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "herald",
                               "--auth=scram-sha-256", "--pwfile=" + pwfile, "-E", "UTF8",
                               "--locale=C", "--no-instructions"], timeout=120)
        os.unlink(pwfile)
        if r.returncode != 0:
            raise RuntimeError("initdb failed: %s %s" % (r.stdout[-2000:], r.stderr[-2000:]))

    # -- server

    def start(self, timeout=30):
        """Starts the postmaster (as postgres, its own process group) and
        waits until it answers; creates the database `herald` the first time."""
        argv = [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port), "-k", self.sock]
        for key, value in self.settings.items():
            argv += ["-c", "%s=%s" % (key, value)]
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(argv, user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[],
                                         cwd=self.dir, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            logf.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited with %s: %s" % (self.proc.returncode, self.tail()))
            r = self.psql("SELECT 1", db="postgres", check=False)
            if r.returncode == 0:
                break
            if time.monotonic() >= deadline:
                raise RuntimeError("postgres did not answer within %ss: %s" % (timeout, self.tail()))
            time.sleep(0.05)
        if (self.sql("SELECT pg_is_in_recovery()", db="postgres") == "f"
                and self.sql("SELECT count(*) FROM pg_database WHERE datname = 'herald'", db="postgres") == "0"):
            self.sql("CREATE DATABASE herald", db="postgres")
        return self

    def reload(self):
        """pg_reload_conf(): postgresql.auto.conf (ALTER SYSTEM) read again,
        by every session too (for what no session SET itself)."""
        self.sql("SELECT pg_reload_conf()", db="postgres")

    def standby(self, name, application_name, settings=None):
        """A streaming standby of this (running) server, not started:
        `pg_basebackup -R -X stream` as postgres over TCP 127.0.0.1 (the
        replication line of initdb's pg_hba.conf, the superuser herald with
        its password), into a directory of its own; application_name is
        added to the primary_conninfo that -R writes (what
        synchronous_standby_names names). Settings as this server's, except
        synchronous_standby_names."""
        base = dict(self.settings)
        base.pop("synchronous_standby_names", None)
        base.update(settings or {})
        sb = Postgres(name, settings=base, init=False)
        r = subprocess.run([os.path.join(self.bin, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "herald", "-D", sb.data, "-R", "-X", "stream", "-c", "fast", "--no-sync"],
                           user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[], cwd=sb.dir,
                           capture_output=True, text=True, timeout=120, env=dict(os.environ, **self.env()))
        if r.returncode != 0:
            sb.cleanup()
            raise RuntimeError("pg_basebackup failed: %s %s" % (r.stdout[-2000:], r.stderr[-2000:]))
        auto = os.path.join(sb.data, "postgresql.auto.conf")
        with open(auto) as f:
            lines = f.read().splitlines()
        done = False
        for i, line in enumerate(lines):
            if line.startswith("primary_conninfo = '") and line.endswith("'"):
                lines[i] = line[:-1] + " application_name=%s'" % application_name
                done = True
        if not done:
            sb.cleanup()
            raise RuntimeError("pg_basebackup -R wrote no primary_conninfo in %s" % auto)
        with open(auto, "w") as f:
            f.write("\n".join(lines) + "\n")
        return sb

    def promote(self, timeout=30):
        """A standby made a primary (pg_promote waits until it is)."""
        out = self.sql("SELECT pg_promote(true, %d)" % timeout, db="postgres")
        if out != "t":
            raise RuntimeError("pg_promote did not finish within %ss: %s" % (timeout, self.tail()))

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGINT, timeout=30):
        """Stops the postmaster by PID (SIGTERM smart, SIGINT fast) and waits."""
        if not self.alive():
            return
        os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=timeout)

    def kill(self, timeout=30):
        """SIGKILL of the postmaster and its backends (its process group), as
        a crash of its host; waits until every one of them is gone."""
        if not self.alive():
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.05)

    def cleanup(self):
        try:
            self.kill()
        finally:
            if os.environ.get("HERALD_KEEP"):
                print("# kept %s" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, lines=20):
        try:
            with open(self.log, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- clients

    def url(self, db="herald"):
        return "postgresql://herald@127.0.0.1:%d/%s" % (self.port, db)

    def in_recovery(self):
        return self.sql("SELECT pg_is_in_recovery()", db="postgres") == "t"

    def env(self):
        return {"PGPASSWORD": PASSWORD}

    def psql(self, sql, db="herald", check=True, timeout=60):
        argv = [os.path.join(self.bin, "psql"), self.url(db), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, **self.env()))
        if check and r.returncode != 0:
            raise RuntimeError("psql %r failed: %s" % (sql, r.stderr.strip()))
        return r

    def sql(self, sql, db="herald"):
        """The output of one statement, stripped (-At: rows on lines, columns
        separated by |)."""
        return self.psql(sql, db=db).stdout.strip()


def url(servers, db="herald"):
    """One URL naming several servers (a primary and its standbys):
    libpq tries them in turn, target_session_attrs=read-write skips a
    standby, so a broker given it follows a promotion by itself."""
    return "postgresql://herald@%s/%s?target_session_attrs=read-write" % (
        ",".join("127.0.0.1:%d" % s.port for s in servers), db)


def run_test(t, name, run):
    """Calls run(t, pg) with a PostgreSQL of its own, started, and removed
    afterwards whatever happens: the body of each test_pg_* test."""
    pg = Postgres(name)
    try:
        pg.start()
        run(t, pg)
    finally:
        pg.cleanup()
