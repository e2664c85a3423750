'use strict';

// The client over mutual TLS with a bearer token: a weftd of the test's own
// with --tls_cert/--tls_key/--tls_client_ca and --auth_tokens, its
// certificates made with openssl when the test runs. Skipped against a
// weftd given by WEFT_ADDR (the compose integration).

const test = require('node:test');
const assert = require('node:assert/strict');
const { execSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const weft = require('..');
const { Program } = require('../testing/servers');

const { Client, call } = weft;
const skip = process.env.WEFT_ADDR || !process.env.WEFT_WEFTD
  ? 'needs WEFT_WEFTD: a weftd this test starts with TLS and tokens'
  : false;

function cert(dir, name, subject) {
  execSync(
    `openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ${name}.key ` +
      `-out ${name}.csr -subj '${subject}' && ` +
      `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ${name}.ext && ` +
      `openssl x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial ` +
      `-out ${name}.pem -days 2 -extfile ${name}.ext`,
    { cwd: dir, stdio: 'ignore' },
  );
}

test('mutual TLS and tokens', { skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-node-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  execSync(
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key " +
      "-out ca.pem -days 2 -subj '/CN=test CA'",
    { cwd: dir, stdio: 'ignore' },
  );
  cert(dir, 'server', '/CN=weftd');
  cert(dir, 'client', '/CN=node-client');
  const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');
  fs.writeFileSync(path.join(dir, 'tokens.json'), JSON.stringify({
    principals: [
      { name: 'alice', role: 'user', tokenSha256: sha('alice-secret') },
      { name: 'ops', role: 'admin', certificateSubject: 'CN=node-client' },
    ],
  }));
  const f = (name) => path.join(dir, name);
  const weftd = new Program('weftd', [process.env.WEFT_WEFTD, '--listen=127.0.0.1:0',
    `--tls_cert=${f('server.pem')}`, `--tls_key=${f('server.key')}`, `--tls_client_ca=${f('ca.pem')}`,
    `--auth_tokens=${f('tokens.json')}`]);
  const address = await weftd.address(/^listening on (\S+)$/);
  const tls = { timeout: 60, tlsCa: f('ca.pem'), tlsCert: f('client.pem'), tlsKey: f('client.key') };
  const alice = new Client(address, { ...tls, token: 'alice-secret' });
  const ops = new Client(address, tls);
  const guess = new Client(address, { ...tls, token: 'guess' });
  t.after(async () => {
    for (const c of [alice, ops, guess]) c.close();
    await weftd.stop();
  });

  const task = await alice.createTask(call('value', { value: 1 }));
  assert.equal(task.creator, 'alice');
  // The certificate's subject names the admin, who reaches every task.
  assert.equal((await ops.getTask(task.name)).creator, 'alice');
  await assert.rejects(alice.createLazyValue('stats', call('value', { value: 1 })), {
    codeName: 'PERMISSION_DENIED',
    reason: 'ADMIN_ONLY',
  });
  await assert.rejects(guess.listHandlers(), { codeName: 'UNAUTHENTICATED', reason: 'CREDENTIALS_INVALID' });
  assert.throws(() => new Client(address, { tlsCa: '/nonexistent' }), /tlsCa \/nonexistent/);
  assert.throws(() => new Client(address, { tlsCa: f('ca.pem'), tlsCert: f('client.pem') }), /go together/);
});
