'use strict';

/**
 * Plain JavaScript values to and from protobuf messages, as the gRPC stubs
 * take and give them.
 *
 * - `google.protobuf.Value`, `Struct` and `ListValue` are JSON values: null,
 *   numbers, strings, booleans, arrays and plain objects.
 * - `google.protobuf.Duration` is a number of seconds (`1.5`); a request
 *   also takes the proto3 JSON string (`"1.5s"`).
 * - `google.protobuf.Timestamp` is a `Date`.
 * - Every other message is a plain object with camelCase fields, enums by
 *   name (`"NODE_STATE_SUCCEEDED"`); requests may write fields in snake_case
 *   too. A request's unknown field, wrong type or unknown enum name is a
 *   TypeError naming it, never a silently empty field.
 * - A `weft.v1.NodeOutcome` that succeeded carries its `value` even in a
 *   full outcome, where weftd sends values at the leaves only: it is built
 *   from the children's as weftd's AssembleValue does.
 *
 * @module weft/values
 */

const protobuf = require('protobufjs');

/**
 * A JSON value: what `google.protobuf.Value` holds.
 *
 * @typedef {null|number|string|boolean|JsonValue[]|{[key: string]: JsonValue}} JsonValue
 */

function describe(value) {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object of class ${value.constructor?.name ?? 'none'}`;
  if (typeof value === 'string') return JSON.stringify(value);
  return `${typeof value} ${String(value)}`;
}

function isPlainObject(value) {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// obj[key] when it is obj's own: a request's key "constructor" is no field.
function own(object, key) {
  return object && Object.hasOwn(object, key) ? object[key] : undefined;
}

function join(path, key) {
  return path ? `${path}.${key}` : key;
}

/**
 * A plain JS value as a `google.protobuf.Value` message object. Objects are
 * plain objects (their keys with `undefined` are left out, as in JSON);
 * anything with a `toJSON` method (a Date) is taken as what that returns.
 *
 * @param {JsonValue} value
 * @param {string} [path] Where the value is, for the TypeError of a value
 *     that is not JSON (a function, a Map, NaN, undefined in a list).
 * @returns {object}
 */
function toValue(value, path = 'value') {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  if (typeof value?.toJSON === 'function') return toValue(value.toJSON(), path);
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) break;
      return { numberValue: value };
    case 'string':
      return { stringValue: value };
    case 'boolean':
      return { boolValue: value };
    case 'object':
      if (Array.isArray(value)) return { listValue: toListValue(value, path) };
      if (isPlainObject(value)) return { structValue: toStruct(value, path) };
      break;
    default:
      break;
  }
  throw new TypeError(`${path}: ${describe(value)} is not a JSON value`);
}

/**
 * A plain object as a `google.protobuf.Struct` message object. Every own
 * key is a field, "__proto__" too (as JSON.parse makes it).
 *
 * @param {{[key: string]: JsonValue}} object
 * @param {string} [path]
 * @returns {object}
 */
function toStruct(object, path = 'value') {
  if (!isPlainObject(object)) {
    throw new TypeError(`${path}: expected a plain object, got ${describe(object)}`);
  }
  // Object.fromEntries defines each key as an own property: an assignment
  // of "__proto__" would set the prototype instead and lose the field.
  const fields = Object.fromEntries(
    Object.entries(object)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => [key, toValue(value, join(path, key))]),
  );
  return { fields };
}

function toListValue(list, path) {
  return { values: list.map((item, i) => toValue(item, `${path}[${i}]`)) };
}

const VALUE_KINDS = {
  nullValue: () => null,
  numberValue: (number) => number,
  stringValue: (string) => string,
  boolValue: (bool) => bool,
  structValue: (struct) => fromStruct(struct),
  listValue: (list) => list.values.map(fromValue),
};

/**
 * A `google.protobuf.Value` message object (decoded, or as toValue makes
 * it) as a plain JS value.
 *
 * @param {object|null} value
 * @returns {JsonValue}
 */
function fromValue(value) {
  // Decoded messages name their member in `kind`; toValue's have one field.
  const kind = value && (value.kind || Object.keys(value).find((key) => Object.hasOwn(VALUE_KINDS, key)));
  return kind ? VALUE_KINDS[kind](value[kind]) : null; // null: a Value with nothing set
}

/**
 * A `google.protobuf.Struct` message object as a plain object, each field an
 * own property ("__proto__" too, as JSON.parse makes it).
 *
 * @param {object} struct
 * @returns {{[key: string]: JsonValue}}
 */
function fromStruct(struct) {
  return Object.fromEntries(Object.entries(struct.fields).map(([k, v]) => [k, fromValue(v)]));
}

// --- durations and times ------------------------------------------------------

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

/**
 * A duration as `{seconds, nanos}`: from a number of seconds or a proto3
 * JSON string ("0.2s", "-1.5s", "3600s").
 *
 * @param {number|string} duration
 * @param {string} [path]
 * @returns {{seconds: number, nanos: number}}
 */
function parseDuration(duration, path = 'duration') {
  if (typeof duration === 'number' && Number.isFinite(duration)) {
    const seconds = Math.trunc(duration);
    const nanos = Math.round((duration - seconds) * 1e9);
    // 0.9999999999 rounds to a whole second.
    return Math.abs(nanos) === 1e9 ? { seconds: seconds + Math.sign(nanos), nanos: 0 } : { seconds, nanos };
  }
  const match = typeof duration === 'string' && DURATION.exec(duration);
  if (!match) {
    throw new TypeError(
      `${path}: expected seconds as a number or a string such as "0.2s", got ${describe(duration)}`,
    );
  }
  const sign = match[1] ? -1 : 1;
  return {
    seconds: sign * Number(match[2]),
    nanos: sign * Number((match[3] || '').padEnd(9, '0')),
  };
}

/**
 * A duration in its proto3 JSON form: 0.2 and "0.200s" are both "0.2s".
 *
 * @param {number|string} duration Seconds, or a string such as "0.2s".
 * @param {string} [path] What the duration is, for the TypeError.
 * @returns {string}
 */
function formatDuration(duration, path = 'duration') {
  const { seconds, nanos } = parseDuration(duration, path);
  const sign = seconds < 0 || nanos < 0 ? '-' : '';
  const fraction = String(Math.abs(nanos)).padStart(9, '0').replace(/0+$/, '');
  return `${sign}${Math.abs(seconds)}${fraction ? `.${fraction}` : ''}s`;
}

function toTimestamp(date, path) {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new TypeError(`${path}: expected a valid Date, got ${describe(date)}`);
  }
  const seconds = Math.floor(date.getTime() / 1000);
  return { seconds, nanos: (date.getTime() - seconds * 1000) * 1e6 };
}

// --- messages: requests ----------------------------------------------------------

const WELL_KNOWN_TO = {
  '.google.protobuf.Value': toValue,
  '.google.protobuf.Struct': toStruct,
  '.google.protobuf.ListValue': (list, path) => {
    if (!Array.isArray(list)) throw new TypeError(`${path}: expected an array, got ${describe(list)}`);
    return toListValue(list, path);
  },
  '.google.protobuf.Duration': parseDuration,
  '.google.protobuf.Timestamp': toTimestamp,
};

const INTEGER_TYPES = new Set([
  'int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64',
]);

function checkScalar(field, value, path) {
  const ok = {
    string: () => typeof value === 'string',
    bool: () => typeof value === 'boolean',
    bytes: () => value instanceof Uint8Array || typeof value === 'string',
    double: () => typeof value === 'number',
    float: () => typeof value === 'number',
  }[field.type];
  const valid = ok ? ok() : INTEGER_TYPES.has(field.type) && Number.isSafeInteger(value);
  if (!valid) throw new TypeError(`${path}: expected ${field.type}, got ${describe(value)}`);
  return value;
}

function checkEnum(enumType, value, path) {
  if (typeof value === 'string' ? Object.hasOwn(enumType.values, value) : Number.isInteger(value)) return value;
  throw new TypeError(
    `${path}: expected one of ${Object.keys(enumType.values).join(', ')}; got ${describe(value)}`,
  );
}

function toSingle(field, value, path) {
  const type = field.resolvedType;
  if (type instanceof protobuf.Type) return toMessage(type, value, path);
  if (type instanceof protobuf.Enum) return checkEnum(type, value, path);
  return checkScalar(field, value, path);
}

function toField(field, value, path) {
  if (field.map) {
    if (!isPlainObject(value)) throw new TypeError(`${path}: expected a plain object, got ${describe(value)}`);
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, toSingle(field, v, `${path}.${k}`)]),
    );
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw new TypeError(`${path}: expected an array, got ${describe(value)}`);
    return value.map((item, i) => toSingle(field, item, `${path}[${i}]`));
  }
  return toSingle(field, value, path);
}

function camelCase(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

/**
 * A request (or a part of one) in its JSON form, with plain values, as the
 * message object the stubs encode. Fields whose value is `undefined` or
 * null (but for a Value's null) are left out; the virtual field naming a
 * oneof's member (`kind`, as decoded messages have it) is ignored: what a
 * call answered can be sent again.
 *
 * @param {protobuf.Type} type
 * @param {object} object
 * @param {string} [path] Where the message is, for TypeErrors.
 * @returns {object}
 */
function toMessage(type, object, path = '') {
  const wellKnown = WELL_KNOWN_TO[type.fullName];
  if (wellKnown) return wellKnown(object, path || type.name);
  if (!isPlainObject(object)) {
    throw new TypeError(`${path || type.name}: expected a plain object, got ${describe(object)}`);
  }
  const out = {};
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined || own(type.oneofs, key)) continue;
    const field = own(type.fields, key) || own(type.fields, camelCase(key));
    if (!field) {
      const known = Object.keys(type.fields).join(', ');
      throw new TypeError(`${join(path, key)}: ${type.name} has no such field; its fields: ${known}`);
    }
    // As in proto3 JSON, null is an absent field, except a Value's JSON null.
    if (value !== null || field.resolvedType?.fullName === '.google.protobuf.Value') {
      out[field.name] = toField(field, value, join(path, key));
    }
  }
  for (const oneof of type.oneofsArray) {
    const set = oneof.fieldsArray.filter((field) => out[field.name] !== undefined);
    if (set.length > 1) {
      throw new TypeError(
        `${path || type.name}: set only one of ${oneof.fieldsArray.map((f) => f.name).join(', ')}; ` +
          `got ${set.map((f) => f.name).join(' and ')}`,
      );
    }
  }
  return out;
}

// --- messages: answers -----------------------------------------------------------

const WELL_KNOWN_FROM = {
  '.google.protobuf.Value': fromValue,
  '.google.protobuf.Struct': fromStruct,
  '.google.protobuf.ListValue': VALUE_KINDS.listValue,
  '.google.protobuf.Duration': ({ seconds, nanos }) => seconds + nanos / 1e9,
  '.google.protobuf.Timestamp': ({ seconds, nanos }) => new Date(seconds * 1000 + Math.floor(nanos / 1e6)),
};

const SUCCEEDED = 'NODE_STATE_SUCCEEDED';

function childName(child, index) {
  return child.id || `children[${index}]`;
}

function settledEntry(child) {
  return child.state === SUCCEEDED
    ? { state: child.state, value: child.value }
    : { state: child.state, error: { code: child.error.code, message: child.error.message } };
}

// A parallel's value; a map's (`keyed` false) is always a list.
function parallelValue(node, keyed = true) {
  const settled = node.join === 'JOIN_ALL_SETTLED';
  const kept = node.children.filter((child) => settled || child.state === SUCCEEDED);
  const values = kept.map((child) => (settled ? settledEntry(child) : child.value));
  if (!keyed || !node.children.every((child) => child.id)) return values;
  return Object.fromEntries(kept.map((child, i) => [child.id, values[i]]));
}

/**
 * The value of a succeeded composite node of a full outcome, from its
 * children's (already converted, each with its value): the rules of
 * server/common/outcome.h's AssembleValue.
 *
 * @param {object} node A converted NodeOutcome without a value of its own.
 * @returns {JsonValue}
 */
function assembleValue(node) {
  switch (node.kind) {
    case 'NODE_KIND_PARALLEL':
      return parallelValue(node);
    case 'NODE_KIND_MAP':
      return parallelValue(node, false);
    case 'NODE_KIND_SEQUENCE':
      return node.children.map((child) => child.value);
    case 'NODE_KIND_RACE': {
      const winner = node.children.find((child, i) => childName(child, i) === node.winner);
      return winner ? winner.value : null;
    }
    case 'NODE_KIND_OFFLOAD':
      return node.children.length === 1 ? node.children[0].value : null;
    default:
      return null;
  }
}

/**
 * A decoded message as plain JS values (see the module's description).
 *
 * @param {protobuf.Type} type
 * @param {object|null} message As the stubs decode it.
 * @returns {object|null}
 */
function fromMessage(type, message) {
  if (message === null || message === undefined) return null;
  const wellKnown = WELL_KNOWN_FROM[type.fullName];
  if (wellKnown) return wellKnown(message);
  const out = {};
  for (const [key, value] of Object.entries(message)) {
    const field = own(type.fields, key);
    const fieldType = field && field.resolvedType;
    if (!(fieldType instanceof protobuf.Type) || value === null) {
      out[key] = value;
    } else if (field.map) {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromMessage(fieldType, v)]));
    } else if (field.repeated) {
      out[key] = value.map((item) => fromMessage(fieldType, item));
    } else {
      out[key] = fromMessage(fieldType, value);
    }
  }
  if (type.fullName === '.weft.v1.NodeOutcome' && out.state === SUCCEEDED && message.value === null) {
    out.value = assembleValue(out);
  }
  return out;
}

module.exports = {
  toValue,
  toStruct,
  fromValue,
  fromStruct,
  parseDuration,
  formatDuration,
  toMessage,
  fromMessage,
  assembleValue,
};
