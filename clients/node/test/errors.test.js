'use strict';

// RPC failures as WeftErrors, their google.rpc details decoded.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const grpc = require('@grpc/grpc-js');
const weft = require('..');
const { protos } = require('../lib/protos');
const { useServers, unique } = require('../testing/servers');

const { call, parallel, WeftError } = weft;
const servers = useServers();

// What a status without details (one gRPC made itself) decodes to.
const NO_DETAILS = { reason: null, domain: null, metadata: {}, fieldViolations: [], retryDelay: null, resource: null };

function pick(err, keys) {
  return Object.fromEntries(keys.map((key) => [key, err[key]]));
}

// The rejection of `promise`, which must be a WeftError.
async function failure(promise) {
  const err = await promise.then(
    () => assert.fail('the call succeeded'),
    (e) => e,
  );
  assert.ok(err instanceof WeftError, `not a WeftError: ${err}`);
  return err;
}

test('an unknown handler: INVALID_ARGUMENT, UNKNOWN_HANDLER, the field that names it', async () => {
  const err = await failure(servers.client.run(call('slep')));
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(err.codeName, 'INVALID_ARGUMENT');
  assert.equal(err.reason, 'UNKNOWN_HANDLER');
  assert.equal(err.domain, 'weft');
  assert.deepEqual(err.metadata, { handler: 'slep' });
  assert.deepEqual(err.fieldViolations.map((v) => v.field), ['plan.call.handler']);
  assert.match(err.fieldViolations[0].description, /unknown handler "slep"/);
  assert.match(err.message, /^INVALID_ARGUMENT: plan\.call\.handler: unknown handler "slep"/);
  assert.equal(err.details, err.message.slice('INVALID_ARGUMENT: '.length));
  assert.equal(err.cause.code, grpc.status.INVALID_ARGUMENT);
});

test('a bad argument deep in a plan names its path', async () => {
  const err = await failure(servers.client.run(parallel([call('value', { value: 1 }), call('sleep', { duration: 'soon' })])));
  assert.equal(err.reason, 'INVALID_FIELD');
  assert.deepEqual(err.fieldViolations.map((v) => v.field), ['plan.parallel.children[1].call.args.duration']);
});

test('a task that does not exist: NOT_FOUND naming the resource', async () => {
  const name = `tasks/${'0123456789abcdef'.repeat(2)}`;
  const err = await failure(servers.client.getTask(name));
  assert.deepEqual(pick(err, ['codeName', 'reason', 'resource']), {
    codeName: 'NOT_FOUND',
    reason: 'TASK_NOT_FOUND',
    resource: { type: 'weft.v1.Task', name },
  });
});

test('a failed lazy computation: its plan\'s code, and why in the metadata', async () => {
  const id = unique('failing');
  await servers.client.createLazyValue(id, call('fail', { code: 'NOT_FOUND', message: 'no stats today' }));
  const err = await failure(servers.client.resolveLazyValue(id));
  assert.deepEqual(pick(err, ['codeName', 'reason', 'metadata']), {
    codeName: 'NOT_FOUND',
    reason: 'LAZY_COMPUTATION_FAILED',
    metadata: { node_reason: 'FAILED_BY_PLAN' },
  });
  await servers.client.deleteLazyValue(id);
});

test('a status gRPC made itself has no details: reason null', async () => {
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });
  const nobody = new weft.Client(`127.0.0.1:${port}`, { timeout: 30 });
  try {
    const err = await failure(nobody.health());
    assert.equal(err.codeName, 'UNAVAILABLE');
    assert.deepEqual(pick(err, Object.keys(NO_DETAILS)), NO_DETAILS);
  } finally {
    nobody.close();
  }
});

test('every detail weftd sends is decoded; one of an unknown type is left out', () => {
  const { root } = protos();
  const any = (type, fields) => ({
    type_url: `type.googleapis.com/${type}`,
    value: root.lookupType(type).encode(root.lookupType(type).fromObject(fields)).finish(),
  });
  const status = root.lookupType('google.rpc.Status');
  const trailer = status
    .encode(
      status.fromObject({
        code: grpc.status.RESOURCE_EXHAUSTED,
        message: 'too many runs',
        details: [
          any('google.rpc.ErrorInfo', { reason: 'TOO_MANY_RUNS', domain: 'weft', metadata: { flag: 'max_active_runs', limit: '1' } }),
          any('google.rpc.RetryInfo', { retryDelay: { seconds: 1, nanos: 500000000 } }),
          any('google.rpc.ResourceInfo', { resourceType: 'weft.v1.Task', resourceName: 'tasks/0a' }),
          any('google.rpc.BadRequest', { fieldViolations: [{ field: 'plan', description: 'missing' }] }),
          { type_url: 'type.googleapis.com/example.Unknown', value: Buffer.from([8, 1]) },
        ],
      }),
    )
    .finish();
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(trailer));
  const err = WeftError.fromServiceError({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many runs', metadata });
  assert.deepEqual(pick(err, ['message', ...Object.keys(NO_DETAILS)]), {
    message: 'RESOURCE_EXHAUSTED: too many runs',
    reason: 'TOO_MANY_RUNS',
    domain: 'weft',
    metadata: { flag: 'max_active_runs', limit: '1' },
    fieldViolations: [{ field: 'plan', description: 'missing' }],
    retryDelay: 1.5,
    resource: { type: 'weft.v1.Task', name: 'tasks/0a' },
  });
  assert.deepEqual(
    err.detailMessages.map((detail) => detail.type),
    ['google.rpc.ErrorInfo', 'google.rpc.RetryInfo', 'google.rpc.ResourceInfo', 'google.rpc.BadRequest'],
  );
});
