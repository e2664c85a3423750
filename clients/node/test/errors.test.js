'use strict';

// RPC failures as WeftErrors, their google.rpc details decoded.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const grpc = require('@grpc/grpc-js');
const weft = require('..');
const { protos } = require('../lib/protos');
const { useServers, unique, within } = require('../testing/servers');
const { startFakeWeftd } = require('../testing/fake_weftd');

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

test('a failed lazy computation: its plan\'s code, and why in the metadata', async (t) => {
  const id = unique('failing');
  servers.removeLazyValueAfter(t, id);
  await servers.client.createLazyValue(id, call('fail', { code: 'NOT_FOUND', message: 'no stats today' }));
  const err = await failure(servers.client.resolveLazyValue(id));
  assert.deepEqual(pick(err, ['codeName', 'reason', 'metadata']), {
    codeName: 'NOT_FOUND',
    reason: 'LAZY_COMPUTATION_FAILED',
    metadata: { node_reason: 'FAILED_BY_PLAN' },
  });
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

// --- decoding the grpc-status-details-bin trailer ---------------------------

// A detail as an Any of `type` (a google.rpc message name).
function any(type, fields) {
  const message = protos().root.lookupType(type);
  return { type_url: `type.googleapis.com/${type}`, value: message.encode(message.fromObject(fields)).finish() };
}

// The trailer of a google.rpc.Status.
function statusTrailer(code, message, details) {
  const status = protos().root.lookupType('google.rpc.Status');
  return Buffer.from(status.encode(status.fromObject({ code, message, details })).finish());
}

// The WeftError of a call that failed with `code` and this trailer.
function errorWithTrailer(code, details, trailer) {
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', trailer);
  return WeftError.fromServiceError({ code, details, metadata });
}

// Bytes that decode as no message: field 1, a varint cut short.
const BAD_TRAILER = Buffer.from([0x08, 0xff]);

test('every detail weftd sends is decoded; one of another type is kept as its Any', () => {
  const unknown = { type_url: 'type.googleapis.com/example.Unknown', value: Buffer.from([8, 1]) };
  const untyped = { type_url: '', value: Buffer.from([8, 2]) };
  const err = errorWithTrailer(
    grpc.status.RESOURCE_EXHAUSTED,
    'too many runs',
    statusTrailer(grpc.status.RESOURCE_EXHAUSTED, 'too many runs', [
      any('google.rpc.ErrorInfo', { reason: 'TOO_MANY_RUNS', domain: 'weft', metadata: { flag: 'max_active_runs', limit: '1' } }),
      any('google.rpc.RetryInfo', { retryDelay: { seconds: 1, nanos: 500000000 } }),
      any('google.rpc.ResourceInfo', { resourceType: 'weft.v1.Task', resourceName: 'tasks/0a' }),
      any('google.rpc.BadRequest', { fieldViolations: [{ field: 'plan', description: 'missing' }] }),
      unknown,
      untyped,
    ]),
  );
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
    ['google.rpc.ErrorInfo', 'google.rpc.RetryInfo', 'google.rpc.ResourceInfo', 'google.rpc.BadRequest',
      'google.protobuf.Any', 'google.protobuf.Any'],
  );
  assert.deepEqual(
    err.detailMessages.slice(4).map(({ typeUrl, value }) => [typeUrl, [...value]]),
    [['type.googleapis.com/example.Unknown', [8, 1]], ['', [8, 2]]],
  );
});

test('a trailer that does not decode gives no details, and no exception', () => {
  const err = errorWithTrailer(grpc.status.INTERNAL, 'broken', BAD_TRAILER);
  assert.deepEqual(pick(err, ['message', 'code', ...Object.keys(NO_DETAILS)]), {
    message: 'INTERNAL: broken',
    code: grpc.status.INTERNAL,
    ...NO_DETAILS,
  });
  assert.deepEqual(err.detailMessages, []);
});

test('a google.rpc detail whose bytes do not decode is kept as its Any', () => {
  const corrupt = { type_url: 'type.googleapis.com/google.rpc.ErrorInfo', value: BAD_TRAILER };
  const err = errorWithTrailer(
    grpc.status.NOT_FOUND,
    'gone',
    statusTrailer(grpc.status.NOT_FOUND, 'gone', [corrupt, any('google.rpc.ResourceInfo', { resourceName: 'tasks/0a' })]),
  );
  assert.equal(err.reason, null);
  assert.deepEqual(err.resource, { type: '', name: 'tasks/0a' });
  assert.deepEqual(err.detailMessages.map((detail) => [detail.type, detail.typeUrl]), [
    ['google.protobuf.Any', 'type.googleapis.com/google.rpc.ErrorInfo'],
    ['google.rpc.ResourceInfo', undefined],
  ]);
});

test('a trailer whose code is not the call\'s is ignored', () => {
  const trailer = statusTrailer(grpc.status.NOT_FOUND, 'no such task', [
    any('google.rpc.ErrorInfo', { reason: 'TASK_NOT_FOUND', domain: 'weft' }),
  ]);
  const err = errorWithTrailer(grpc.status.INTERNAL, 'a proxy failed', trailer);
  assert.deepEqual(pick(err, ['codeName', ...Object.keys(NO_DETAILS)]), { codeName: 'INTERNAL', ...NO_DETAILS });
  assert.deepEqual(err.detailMessages, []);
  // The same trailer on a call of its code is decoded.
  assert.equal(errorWithTrailer(grpc.status.NOT_FOUND, 'no such task', trailer).reason, 'TASK_NOT_FOUND');
});

test('a call answered with a trailer that does not decode rejects with its status', async (t) => {
  const server = await startFakeWeftd({
    GetTask(_, callback) {
      const metadata = new grpc.Metadata();
      metadata.set('grpc-status-details-bin', BAD_TRAILER);
      callback({ code: grpc.status.UNAVAILABLE, details: 'try later', metadata });
    },
  });
  const client = new weft.Client(server.address, { timeout: 30 });
  t.after(() => {
    client.close();
    server.close();
  });
  const err = await within(failure(client.getTask('tasks/0a')), 10_000, 'getTask');
  assert.deepEqual(pick(err, ['message', ...Object.keys(NO_DETAILS)]), { message: 'UNAVAILABLE: try later', ...NO_DETAILS });
});
