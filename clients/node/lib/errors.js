'use strict';

/**
 * weft's RPC errors, with the google.rpc details weftd sends in the
 * `grpc-status-details-bin` trailer decoded (docs/errors.md).
 *
 * @module weft/errors
 */

const grpc = require('@grpc/grpc-js');
const protobuf = require('protobufjs');
const { protos, LOADER_OPTIONS } = require('./protos');
const { fromMessage } = require('./values');

/**
 * A failed call: its gRPC status and what weftd said about it.
 *
 * A status without an `ErrorInfo` (`reason` null) is one gRPC made itself:
 * an unreachable server, a deadline that passed before weftd answered, a
 * message over the size limit.
 */
class WeftError extends Error {
  /**
   * @param {object} fields
   * @param {number} fields.code The gRPC status code (`grpc.status`).
   * @param {string} fields.details The status message, for people.
   * @param {object[]} [fields.detailMessages] The decoded google.rpc details,
   *     each with its `type` name (`"google.rpc.ErrorInfo"`); one of
   *     another type as `{type: "google.protobuf.Any", typeUrl, value}`.
   * @param {object} [options] `{cause}`: the grpc-js error.
   */
  constructor({ code, details, detailMessages = [] }, options) {
    const codeName = grpc.status[code] ?? String(code);
    super(`${codeName}: ${details}`, options);
    const find = (type) => detailMessages.find((detail) => detail.type === type);
    const info = find('google.rpc.ErrorInfo');
    const badRequest = find('google.rpc.BadRequest');
    const retry = find('google.rpc.RetryInfo');
    const resource = find('google.rpc.ResourceInfo');
    this.name = 'WeftError';
    /** @type {number} The gRPC status code, e.g. 3. */
    this.code = code;
    /** @type {string} Its name, e.g. "INVALID_ARGUMENT". */
    this.codeName = codeName;
    /** @type {string} The status message. */
    this.details = details;
    /** @type {string|null} ErrorInfo.reason, e.g. "UNKNOWN_HANDLER"; null without ErrorInfo. */
    this.reason = info ? info.reason : null;
    /** @type {string|null} ErrorInfo.domain: "weft" for weftd's errors. */
    this.domain = info ? info.domain : null;
    /** @type {{[key: string]: string}} ErrorInfo.metadata, e.g. {handler: "slep"}. */
    this.metadata = info ? info.metadata : {};
    /** @type {{field: string, description: string}[]} BadRequest's violations. */
    this.fieldViolations = badRequest
      ? badRequest.fieldViolations.map(({ field, description }) => ({ field, description }))
      : [];
    /** @type {number|null} RetryInfo.retryDelay in seconds: wait this long before retrying. */
    this.retryDelay = retry && retry.retryDelay !== null ? retry.retryDelay : null;
    /** @type {{type: string, name: string}|null} ResourceInfo: the task or lazy value meant. */
    this.resource = resource ? { type: resource.resourceType, name: resource.resourceName } : null;
    /** @type {object[]} Every decoded detail, with its `type`. */
    this.detailMessages = detailMessages;
  }

  /**
   * The WeftError of a grpc-js error, its details decoded (see
   * decodeDetails: never throws; a trailer that does not decode or whose
   * code is not the call's is ignored).
   *
   * @param {import('@grpc/grpc-js').ServiceError} err
   * @returns {WeftError}
   */
  static fromServiceError(err) {
    return new WeftError(
      { code: err.code, details: err.details, detailMessages: decodeDetails(err.metadata, err.code) },
      { cause: err },
    );
  }
}

/**
 * The details of the google.rpc.Status in a call's `grpc-status-details-bin`
 * trailer. Never throws: a trailer that does not decode, or whose Status
 * has another code than the call (`code`), gives no details at all; a
 * detail of a type that is not a google.rpc message (an unknown or empty
 * type URL), or that does not decode, is kept as the Any it is:
 * `{type: "google.protobuf.Any", typeUrl, value}`, `value` its bytes.
 *
 * @param {import('@grpc/grpc-js').Metadata} [metadata] The call's trailers.
 * @param {number} code The call's status code.
 * @returns {object[]} Each detail with its `type` ("google.rpc.ErrorInfo").
 */
function decodeDetails(metadata, code) {
  let status;
  try {
    const [trailer] = metadata ? metadata.get('grpc-status-details-bin') : [];
    if (!trailer) return [];
    status = protos().root.lookupType('google.rpc.Status').decode(trailer);
  } catch {
    return [];
  }
  if (status.code !== code) return [];
  return status.details.map(decodeDetail);
}

// One Any of a Status: a google.rpc message as plain values, else the Any.
function decodeDetail(any) {
  const typeUrl = any.type_url ?? any.typeUrl ?? ''; // protobufjs's bundled Any keeps its snake_case
  const typeName = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  try {
    if (typeName.startsWith('google.rpc.')) {
      const type = protos().root.lookup(typeName, protobuf.Type);
      if (type) return { type: typeName, ...fromMessage(type, type.toObject(type.decode(any.value), LOADER_OPTIONS)) };
    }
  } catch {
    // Bytes that are not the message they say: kept as an unknown type is.
  }
  return { type: 'google.protobuf.Any', typeUrl, value: any.value };
}

module.exports = { WeftError, decodeDetails };
