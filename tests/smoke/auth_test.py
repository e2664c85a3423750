"""TLS and callers end to end: a real weftd with --tls_cert/--tls_key and
--auth_tokens, reached as grpcurl would (`buf curl` with --cacert and an
authorization header) and through the CLI (--tls_ca, --token and their
WEFT_CLIENT_* variables); SIGHUP reading the tokens and the certificate again;
files that are wrong at start.

Certificates are made with openssl when the test runs.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from weftd import ARGS, Weftd, WeftdTest, buf_curl, run_tests, wait_for, weft_error  # noqa: E402


def sh(cmd, cwd):
    subprocess.run(cmd, shell=True, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout %s.key -out %s.pem -days 2 -subj '/CN=%s test CA'" % (name, name, name), d)


def make_cert(d, name, ca, subject):
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout {n}.key -out {n}.csr -subj '{s}' && "
       "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > {n}.ext && "
       "openssl x509 -req -in {n}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial "
       "-out {n}.pem -days 2 -extfile {n}.ext".format(n=name, ca=ca, s=subject), d)


def tokens(**principals):
    """An --auth_tokens document: name=(role, token)."""
    return json.dumps({"principals": [
        {"name": name, "role": role, "tokenSha256": hashlib.sha256(token.encode()).hexdigest()}
        for name, (role, token) in principals.items()]})


class AuthTest(WeftdTest):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="weft-auth-")
        cls.addClassCleanup(shutil.rmtree, cls.dir)
        make_ca(cls.dir, "ca")
        make_cert(cls.dir, "server", "ca", "/CN=weftd")
        cls.tokens = os.path.join(cls.dir, "tokens.json")
        with open(cls.tokens, "w") as f:
            f.write(tokens(ops=("admin", "ops-secret"), alice=("user", "alice-secret")))
        cls.weftd = cls.class_weftd(
            "--tls_cert=" + cls.path("server.pem"), "--tls_key=" + cls.path("server.key"),
            "--auth_tokens=" + cls.tokens)

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir, name)

    def as_(self, token, *args, ca="ca.pem", stdin=None):
        """The weft CLI over TLS (trusting `ca`), presenting `token` through
        WEFT_TOKEN; weftd's own WEFT_TLS_* variables are set to nonsense, as
        in a container beside weftd, and must not be read."""
        env = dict(os.environ, WEFT_CLIENT_TLS_CA=self.path(ca),
                   WEFT_TLS_CERT="/nonexistent", WEFT_TLS_KEY="/nonexistent")
        env.pop("WEFT_TOKEN", None)
        if token:
            env["WEFT_TOKEN"] = token
        return self.weft(*args, env=env, stdin=stdin)

    def grpcurl(self, token, method, body):
        """`buf curl` as `grpcurl -cacert ca.pem -H 'authorization: Bearer ...'`."""
        args = ["--cacert", self.path("ca.pem")]
        if token:
            args += ["-H", "authorization: Bearer " + token]
        return buf_curl(ARGS.buf, self.weftd.address, *args, "-d", json.dumps(body),
                        "https://{addr}/weft.v1.Orchestrator/" + method)

    def test_grpcurl_with_cacert_and_a_token(self):
        r = self.grpcurl("alice-secret", "ListHandlers", {})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("sleep", [h["name"] for h in json.loads(r.stdout)["handlers"]])
        err = weft_error(self.grpcurl(None, "ListHandlers", {}), "unauthenticated",
                         "CREDENTIALS_MISSING")
        self.assertNotIn("alice", err["message"])
        err = weft_error(self.grpcurl("guess", "ListHandlers", {}), "unauthenticated",
                         "CREDENTIALS_INVALID")
        self.assertNotIn("alice", err["message"])
        self.assertNotIn("ops", err["message"])

    def test_plaintext_is_not_served(self):
        r = self.call("ListHandlers", {})
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn('"handlers"', r.stdout)

    def test_the_cli_presents_its_token_and_users_see_their_own_tasks(self):
        plan = '{"call": {"handler": "value", "args": {"value": 1}}}'
        r = self.as_("alice-secret", "task", "create", "-", "--wait", stdin=plan)
        self.assertEqual(r.returncode, 0, r.stderr)
        name = json.loads(r.stdout)["name"]
        self.assertEqual(json.loads(r.stdout)["creator"], "alice")
        r = self.as_("ops-secret", "task", "get", name)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.as_(None, "task", "get", name)
        self.assertEqual(r.returncode, 2)
        self.assertIn("UNAUTHENTICATED", r.stderr)
        # The health service asks no one who calls.
        r = self.as_(None, "health")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_sighup_reads_the_tokens_again_and_keeps_them_when_the_file_is_bad(self):
        path = self.path("hup.json")
        with open(path, "w") as f:
            f.write(tokens(bob=("admin", "bob-secret")))
        with Weftd(ARGS.weftd, "--auth_tokens=" + path) as weftd:
            def info(token):
                env = dict(os.environ, WEFT_TOKEN=token)
                return self.weft("info", weftd=weftd, env=env)

            self.assertEqual(info("bob-secret").returncode, 0)
            with open(path, "w") as f:
                f.write(tokens(carol=("admin", "carol-secret")))
            weftd.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "read --auth_tokens again (1 principals)" in weftd.log(),
                     "weftd to read the tokens again")
            self.assertEqual(info("carol-secret").returncode, 0)
            r = info("bob-secret")
            self.assertEqual(r.returncode, 2)
            self.assertIn("UNAUTHENTICATED", r.stderr)

            with open(path, "w") as f:
                f.write('{"principals": [{"name": "dave", "role": "root"}]}')
            weftd.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "the principals in force stay" in weftd.log(),
                     "weftd to refuse the bad file")
            self.assertIn("principals[0].role", weftd.log())
            self.assertEqual(info("carol-secret").returncode, 0)

    def test_sighup_rotates_the_certificate(self):
        d = self.dir
        make_ca(d, "old")
        make_ca(d, "new")
        make_cert(d, "rot", "old", "/CN=weftd")
        shutil.copy(self.path("rot.pem"), self.path("live.pem"))
        shutil.copy(self.path("rot.key"), self.path("live.key"))
        with Weftd(ARGS.weftd, "--tls_cert=" + self.path("live.pem"),
                   "--tls_key=" + self.path("live.key")) as weftd:
            def health(ca):
                env = dict(os.environ, WEFT_CLIENT_TLS_CA=self.path(ca))
                return self.weft("health", weftd=weftd, env=env).returncode

            self.assertEqual(health("old.pem"), 0)
            self.assertNotEqual(health("new.pem"), 0)
            make_cert(d, "rot", "new", "/CN=weftd")
            shutil.copy(self.path("rot.pem"), self.path("live.pem"))
            shutil.copy(self.path("rot.key"), self.path("live.key"))
            weftd.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "read the TLS files again" in weftd.log(), "the reload")
            wait_for(lambda: health("new.pem") == 0, "the new certificate to be served",
                     interval=0.2)

    def test_files_wrong_at_start_stop_weftd_naming_them(self):
        make_ca(self.dir, "other")
        msg = self.start_refused("--tls_cert=" + self.path("server.pem"),
                                 "--tls_key=" + self.path("other.key"))
        self.assertIn(self.path("other.key"), msg)
        self.assertIn("does not match", msg)
        msg = self.start_refused("--tls_cert=" + self.path("missing.pem"),
                                 "--tls_key=" + self.path("server.key"))
        self.assertIn(self.path("missing.pem"), msg)
        bad = self.path("bad-tokens.json")
        with open(bad, "w") as f:
            f.write('{"principals": [{"name": "eve", "role": "user", "tokenSha256": "abc"}]}')
        msg = self.start_refused("--auth_tokens=" + bad)
        self.assertIn(bad, msg)
        self.assertIn("principals[0].tokenSha256", msg)


if __name__ == "__main__":
    run_tests("weftd", "weft", "buf")
