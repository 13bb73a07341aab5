'use strict'

/**
 * Argument checks shared by the package's modules: a value of the wrong JS
 * type is a `TypeError`, thrown before any native call.
 */

function describe(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value
}

function str(value, name) {
  if (typeof value !== 'string') {
    throw new TypeError(`${name} must be a string, got ${describe(value)}`)
  }
  return value
}

function optStr(value, name) {
  return value === undefined || value === null ? undefined : str(value, name)
}

function num(value, name) {
  if (typeof value !== 'number') {
    throw new TypeError(`${name} must be a number, got ${describe(value)}`)
  }
  return value
}

function optNum(value, name) {
  return value === undefined || value === null ? undefined : num(value, name)
}

function obj(value, name) {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${name} must be an object, got ${describe(value)}`)
  }
  return value
}

function defined(value, name) {
  if (value === undefined) throw new TypeError(`${name} is required (undefined is not a JSON value)`)
  return value
}

module.exports = { describe, str, optStr, num, optNum, obj, defined }
