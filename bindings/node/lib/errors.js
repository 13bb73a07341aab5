'use strict'

/**
 * The package's error classes: one `SessionStoreError` subclass per error
 * kind of the core, built from the native module's `errorKinds()` (the
 * core's list, with each kind's code and class name), and the translation
 * of native errors into them.
 */

const native = require('../index.js')

/** Every error kind of the core, in its order: `{ code, className }`. */
const KINDS = Object.freeze(native.errorKinds().map((k) => Object.freeze(k)))

/** Every stable error code of the store, in the core's order. */
const CODES = Object.freeze(KINDS.map((k) => k.code))

/** Base class of every error the store reports; `.code` is the stable code. */
class SessionStoreError extends Error {
  constructor(code, message, options) {
    super(message, options)
    this.code = code
  }

  get name() {
    return this.constructor.name
  }
}

/** Code → class. */
const classes = {}
/** Class name → class, e.g. `NotFoundError`. */
const byName = {}
for (const { code, className: name } of KINDS) {
  // One named subclass per code, e.g. `class NotFoundError extends SessionStoreError`.
  const cls = {
    [name]: class extends SessionStoreError {
      constructor(message, options) {
        super(code, message, options)
      }
    },
  }[name]
  classes[code] = cls
  byName[name] = cls
}

const PREFIX = new RegExp(`^(${CODES.join('|')}): ([\\s\\S]*)$`)

/**
 * Turn an error thrown by the native layer into the package's error classes:
 * the native message starts with the stable code (`"not_found: …"`). A value
 * of the wrong JS type that reached the native layer becomes a `TypeError`.
 */
function fromNative(err) {
  if (!(err instanceof Error) || err instanceof SessionStoreError || err instanceof TypeError) return err
  const m = PREFIX.exec(err.message)
  if (m) return new classes[m[1]](m[2], { cause: err })
  if (
    err.code === 'InvalidArg' ||
    err.code === 'StringExpected' ||
    err.code === 'NumberExpected' ||
    err.code === 'ObjectExpected' ||
    err.code === 'BooleanExpected' ||
    err.code === 'ArrayExpected' ||
    err.code === 'FunctionExpected'
  ) {
    return new TypeError(err.message, { cause: err })
  }
  return new classes.internal(err.message, { cause: err })
}

/** Run a native async call, translating its error (also a synchronous throw). */
async function call(fn) {
  try {
    return await fn()
  } catch (err) {
    throw fromNative(err)
  }
}

/** Run a synchronous native call, translating its error. */
function callSync(fn) {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}

module.exports = {
  SessionStoreError,
  /** One class per code, by class name (`NotFoundError`, …). */
  errorClasses: Object.freeze(byName),
  ERROR_CODES: CODES,
  errorClassFor: (code) => classes[code],
  fromNative,
  call,
  callSync,
}
