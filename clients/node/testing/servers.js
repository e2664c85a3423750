'use strict';

/**
 * The servers a test file runs against: weftd and the HTTP fixture.
 *
 * With WEFT_ADDR set, the weftd there and the fixture at WEFT_UPSTREAM
 * (host:port as weftd reaches it, e.g. "upstream:8080" in docker compose),
 * reached with the TLS files and token of the weft CLI's variables.
 * Otherwise this file starts its own: $WEFT_WEFTD --listen=127.0.0.1:0
 * --http_allow=127.0.0.1 and $WEFT_FIXTURE --listen=127.0.0.1:0, each
 * found by the address on its first stdout line, and stops them with
 * SIGTERM at the end, failing unless they exit 0.
 *
 * Kept out of test/, where `node --test test/` takes every .js file for a
 * test file.
 */

const { before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const readline = require('node:readline');
const { Client, isTerminal } = require('..');

/** How long a program may take to start, or to stop after SIGTERM. */
const PROCESS_TIMEOUT_MS = 30_000;

/** Each call's deadline, in seconds: generous, for a shared 2-core machine. */
const CALL_TIMEOUT = 120;

function required(variable) {
  const value = process.env[variable];
  if (!value) {
    throw new Error(
      `${variable} is not set: set WEFT_WEFTD and WEFT_FIXTURE to the weftd and http_fixture ` +
        'programs, or WEFT_ADDR and WEFT_UPSTREAM to a running weftd and fixture',
    );
  }
  return value;
}

function withTimeout(promise, what, ms = PROCESS_TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A program that prints where it listens as its first stdout line. */
class Program {
  constructor(name, argv) {
    this.name = name;
    this.stderr = '';
    this.process = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process.stderr.setEncoding('utf8').on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-20_000);
    });
    this.exited = new Promise((resolve) => {
      this.process.on('exit', (code, signal) => resolve({ code, signal }));
      this.process.on('error', (err) => {
        this.stderr += `\n${err.message}`; // e.g. ENOENT: no such program
        resolve({ code: null, signal: null });
      });
    });
    this.lines = readline.createInterface({ input: this.process.stdout })[Symbol.asyncIterator]();
  }

  /** The first stdout line's match of `pattern`, or an Error with its stderr. */
  async address(pattern) {
    const first = await withTimeout(
      Promise.race([this.lines.next(), this.exited.then(() => ({ done: true }))]),
      `${this.name} did not start`,
    );
    const match = !first.done && pattern.exec(first.value);
    if (!match) {
      this.process.kill('SIGKILL');
      const said = first.done ? 'it printed nothing' : `its first line: ${JSON.stringify(first.value)}`;
      throw new Error(`${this.name} did not start (${said}); its stderr:\n${this.stderr}`);
    }
    return match[1];
  }

  /** Sends SIGTERM and fails unless the program exits 0. */
  async stop() {
    this.process.kill('SIGTERM');
    const { code, signal } = await withTimeout(this.exited, `${this.name} did not stop`).catch((err) => {
      this.process.kill('SIGKILL');
      throw err;
    });
    assert.equal(code, 0, `${this.name} exited with code ${code} (signal ${signal}); its stderr:\n${this.stderr}`);
  }
}

// What `remove` does, unless what it removes is gone already.
async function unlessNotFound(remove) {
  try {
    await remove();
  } catch (err) {
    if (err.codeName !== 'NOT_FOUND') throw err;
  }
}

// A task gone: cancelled if it has not ended, then deleted.
function removeTask(client, name) {
  return unlessNotFound(async () => {
    const task = await client.cancelTask(name);
    if (!isTerminal(task)) await client.waitTask(name, { timeout: 30 });
    await client.deleteTask(name);
  });
}

/**
 * The Client options the weft CLI's variables give (WEFT_CLIENT_TLS_CA,
 * WEFT_CLIENT_TLS_CERT, WEFT_CLIENT_TLS_KEY, WEFT_TOKEN): how to reach the
 * weftd of WEFT_ADDR (the compose file's takes mutual TLS only).
 */
function credentialsFromEnv() {
  const names = { tlsCa: 'WEFT_CLIENT_TLS_CA', tlsCert: 'WEFT_CLIENT_TLS_CERT', tlsKey: 'WEFT_CLIENT_TLS_KEY', token: 'WEFT_TOKEN' };
  return Object.fromEntries(
    Object.entries(names)
      .filter(([, variable]) => process.env[variable])
      .map(([option, variable]) => [option, process.env[variable]]),
  );
}

/**
 * Registers the test file's before and after hooks and returns what they
 * fill in: `client` (a Client of weftd), `address` (weftd's),
 * `credentials` (the Client options that reach it: TLS files, a token),
 * `upstream`
 * (the fixture's host:port) and `url(pathAndQuery)`, the fixture's URL as
 * weftd reaches it; and `removeTaskAfter(t, name)` and
 * `removeLazyValueAfter(t, name)`, which have the test `t` clean up what it
 * created when it ends, passed or failed, as a long-lived weftd (WEFT_ADDR)
 * needs: a task cancelled if it still runs, then deleted; a lazy value
 * deleted. What is gone already is fine.
 */
function useServers() {
  const programs = [];
  const servers = {
    url: (pathAndQuery) => `http://${servers.upstream}${pathAndQuery}`,
    removeTaskAfter: (t, name) => t.after(() => removeTask(servers.client, name)),
    removeLazyValueAfter: (t, name) => t.after(() => unlessNotFound(() => servers.client.deleteLazyValue(name))),
  };
  before(async () => {
    if (process.env.WEFT_ADDR) {
      servers.address = process.env.WEFT_ADDR;
      servers.upstream = process.env.WEFT_UPSTREAM;
      if (!servers.upstream) {
        throw new Error(
          `WEFT_ADDR is set (${servers.address}) but WEFT_UPSTREAM is not: set it to the HTTP fixture's ` +
            'host:port as that weftd reaches it (e.g. upstream:8080 in docker compose)',
        );
      }
    } else {
      const weftd = new Program('weftd', [required('WEFT_WEFTD'), '--listen=127.0.0.1:0', '--http_allow=127.0.0.1']);
      programs.push(weftd);
      const fixture = new Program('http_fixture', [required('WEFT_FIXTURE'), '--listen=127.0.0.1:0']);
      programs.push(fixture);
      servers.address = await weftd.address(/^listening on (\S+)$/);
      servers.upstream = await fixture.address(/^http fixture listening on http:\/\/(\S+)$/);
    }
    servers.credentials = process.env.WEFT_ADDR ? credentialsFromEnv() : {};
    servers.client = new Client(servers.address, { timeout: CALL_TIMEOUT, ...servers.credentials });
  });
  after(async () => {
    servers.client?.close();
    await Promise.all(programs.map((program) => program.stop()));
  });
  return servers;
}

/** `prefix` and 12 random hex digits: an id no other run uses. */
function unique(prefix) {
  return `${prefix}-${crypto.randomBytes(6).toString('hex')}`;
}

/**
 * `promise`, or a rejection naming `what` if it has not settled within `ms`:
 * a test waiting for something that never comes fails, naming it, rather
 * than hanging until ctest's timeout.
 */
function within(promise, ms, what) {
  return withTimeout(promise, what, ms);
}

module.exports = { useServers, unique, within, Program };
