'use strict';

// Values as plain JS values: through protobuf's wire format, through weftd
// and back, and values of composite nodes built from their children's.

const test = require('node:test');
const assert = require('node:assert/strict');
const weft = require('..');
const { protos, LOADER_OPTIONS } = require('../lib/protos');
const { useServers } = require('../testing/servers');

const { call, parallel, race, offload, sequence } = weft;
const servers = useServers();

// Every kind of JSON value, nested.
const NESTED = {
  answer: 42,
  negative: -7,
  ratio: 0.25,
  big: Number.MAX_SAFE_INTEGER,
  name: 'Ada Lovelace ✓',
  empty: '',
  yes: true,
  no: false,
  nothing: null,
  list: [1, 'two', null, [3], { four: 4 }],
  emptyList: [],
  emptyObject: {},
  user: { id: 42, address: { city: 'London', lines: ['12 St James Sq'] } },
};

// Every object in `value` is a plain object: no Struct or Value wrapper.
function assertPlain(value, path = 'value') {
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertPlain(item, `${path}[${i}]`));
  } else if (typeof value === 'object' && value !== null) {
    assert.equal(Object.getPrototypeOf(value), Object.prototype, `${path} is not a plain object`);
    for (const [key, item] of Object.entries(value)) assertPlain(item, `${path}.${key}`);
  }
}

test('a value goes through the wire format unchanged', () => {
  const Value = protos().root.lookupType('google.protobuf.Value');
  const bytes = Value.encode(Value.fromObject(weft.toValue(NESTED))).finish();
  const decoded = weft.fromValue(Value.toObject(Value.decode(bytes), LOADER_OPTIONS));
  assert.deepStrictEqual(decoded, NESTED);
  assertPlain(decoded);
});

test('what is not JSON is refused, naming where it is', () => {
  assert.throws(() => weft.toValue({ a: [1, Number.NaN] }), {
    name: 'TypeError',
    message: 'value.a[1]: number NaN is not a JSON value',
  });
  assert.throws(() => weft.toStruct({ when: new Map() }), {
    name: 'TypeError',
    message: 'value.when: an object of class Map is not a JSON value',
  });
  assert.throws(() => weft.toValue([undefined]), { message: 'value[0]: undefined is not a JSON value' });
  // As JSON.stringify does: undefined fields are left out, Dates are strings.
  const when = new Date('2026-01-02T03:04:05.678Z');
  assert.deepEqual(weft.fromStruct(weft.toStruct({ gone: undefined, when })), { when: '2026-01-02T03:04:05.678Z' });
});

// A "__proto__" key, as JSON.parse makes it: an own property, at the top
// and deeper down.
const PROTO_KEYS = JSON.parse('{"__proto__": {"polluted": true}, "list": [{"__proto__": 1}], "ok": 2}');

// `value` has "__proto__" as an own key, and Object's prototype as its own.
function assertOwnProtoKey(value, what) {
  assert.ok(Object.hasOwn(value, '__proto__'), `${what} lost its "__proto__" key`);
  assert.equal(Object.getPrototypeOf(value), Object.prototype, `${what}'s prototype changed`);
  assert.equal(value.polluted, undefined, `${what} took "__proto__" as its prototype`);
}

test('a "__proto__" key is a field like any other, to a Struct and back', () => {
  const struct = weft.toStruct(PROTO_KEYS);
  assert.deepEqual(Object.keys(struct.fields), ['__proto__', 'list', 'ok']);
  assert.deepEqual(Object.keys(weft.toValue(PROTO_KEYS.list[0]).structValue.fields), ['__proto__']);

  const Struct = protos().root.lookupType('google.protobuf.Struct');
  const decoded = Struct.toObject(Struct.decode(Struct.encode(Struct.fromObject(struct)).finish()), LOADER_OPTIONS);
  const back = weft.fromStruct(decoded);
  assert.deepStrictEqual(back, PROTO_KEYS);
  assertOwnProtoKey(back, 'the object');
  assertOwnProtoKey(back.list[0], 'the object in the list');
  assert.equal({}.polluted, undefined);

  // A Struct as an answer carries it, made by hand: an own property still.
  const answered = weft.fromStruct({ fields: Object.fromEntries([['__proto__', { stringValue: 'x' }]]) });
  assert.deepEqual(Object.entries(answered), [['__proto__', 'x']]);
  assertOwnProtoKey(answered, 'the answer');
});

test('a plain object as args reaches the handler whole', async () => {
  const outcome = await servers.client.run(call('value', { value: NESTED }));
  assert.equal(outcome.state, 'NODE_STATE_SUCCEEDED');
  assert.deepStrictEqual(outcome.value, NESTED);

  const withProtoKeys = await servers.client.run(call('value', { value: PROTO_KEYS }));
  assert.deepStrictEqual(withProtoKeys.value, PROTO_KEYS);
  assertOwnProtoKey(withProtoKeys.value, 'the value weftd answered');
});

test('values come back native: 42 stays 42, objects are plain', async () => {
  const outcome = await servers.client.run(
    parallel([
      call('value', { value: 42 }, { id: 'number' }),
      call('value', { value: { followers: 42, tags: ['a'] } }, { id: 'object' }),
      call('value', { value: null }, { id: 'nothing' }),
    ]),
    { detail: 'root' },
  );
  assert.equal(outcome.value.number, 42);
  assert.ok(Number.isInteger(outcome.value.number));
  assert.deepStrictEqual(outcome.value, { number: 42, object: { followers: 42, tags: ['a'] }, nothing: null });
  assertPlain(outcome.value);
});

test('a request that cannot be encoded is refused before it is sent', async () => {
  await assert.rejects(servers.client.run(call('value', { value: { when: new Map() } })), {
    name: 'TypeError',
    message: 'plan.call.args.value.when: an object of class Map is not a JSON value',
  });
  await assert.rejects(servers.client.run({ call: { handler: 'value', arg: { value: 1 } } }), {
    name: 'TypeError',
    message: /^plan\.call\.arg: CallNode has no such field; its fields: handler, args$/,
  });
  await assert.rejects(servers.client.run(parallel([call('value')], { join: 'JOIN_SOME' })), {
    name: 'TypeError',
    message: /^plan\.parallel\.join: expected one of JOIN_UNSPECIFIED, JOIN_ALL, JOIN_ALL_SETTLED, JOIN_QUORUM/,
  });
  await assert.rejects(servers.client.run({ call: { handler: 'value' }, sequence: { children: [] } }), {
    name: 'TypeError',
    message: /^plan: set only one of call, parallel, race, offload, sequence, lazy, map; got call and sequence$/,
  });
});

test('a full outcome has the values weftd builds for the root alone', async () => {
  const plan = parallel([
    sequence([call('value', { value: 1 }), call('value', { value: 'two' })], { id: 'steps' }),
    race(
      [
        call('fail', { code: 'UNAVAILABLE', message: 'primary is down' }, { id: 'primary' }),
        call('sleep', { duration: '0.05s', value: { hits: 3 } }, { id: 'backup' }),
      ],
      { id: 'search' },
    ),
    offload(call('value', { value: [1, 2] }), { id: 'digest' }),
    parallel(
      [call('value', { value: 'sent' }, { id: 'ada' }), call('fail', { code: 'INTERNAL', message: 'boom' }, { id: 'grace' })],
      { id: 'newsletter', join: 'JOIN_ALL_SETTLED' },
    ),
    parallel([call('value', { value: 'x' }), call('value', { value: 'y' })], { id: 'unnamed' }),
  ]);
  const full = await servers.client.run(plan);
  const root = await servers.client.run(plan, { detail: 'root' });
  assert.equal(root.children.length, 0);
  assert.deepStrictEqual(root.value, {
    steps: [1, 'two'],
    search: { hits: 3 },
    digest: [1, 2],
    newsletter: {
      ada: { state: 'NODE_STATE_SUCCEEDED', value: 'sent' },
      grace: { state: 'NODE_STATE_FAILED', error: { code: 'INTERNAL', message: 'boom' } },
    },
    unnamed: ['x', 'y'],
  });
  assert.deepStrictEqual(full.value, root.value);
  // Every composite node of the full tree carries its own value too.
  const [steps, search, digest, newsletter, unnamed] = full.children;
  assert.deepStrictEqual(
    [steps.value, search.value, digest.value, newsletter.value, unnamed.value],
    [root.value.steps, root.value.search, root.value.digest, root.value.newsletter, root.value.unnamed],
  );
});
