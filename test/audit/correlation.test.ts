import { describe, expect, it } from 'vitest';
import {
  correlationHeaders,
  correlationIdFromMessage,
  correlationIdHeader,
  correlationMessageAttributes,
  headerValue,
  isValidCorrelationId,
  resolveCorrelationId,
} from '../../middleware/audit/correlation.js';
import { createRedactor } from '../../middleware/audit/redact.js';
import {
  bodyBytes,
  captureBody,
  normalizeResponse,
  statusOfError,
} from '../../middleware/audit/request-summary.js';

describe('correlation ids', () => {
  it('accepts a safe id from the header, in any header casing', () => {
    expect(resolveCorrelationId({ 'x-correlation-id': 'order-42' })).toEqual({
      correlationId: 'order-42',
      source: 'header',
    });
    expect(resolveCorrelationId({ 'X-Correlation-ID': 'Root=1-abc:def/ghi+j=k@l' })).toMatchObject({
      source: 'header',
    });
    // base64url and nanoid ids start with `_` one time in 64.
    for (const id of ['_vdZg0_COBOXOZSnKIBfr', '_']) {
      expect(resolveCorrelationId({ 'x-correlation-id': id })).toEqual({
        correlationId: id,
        source: 'header',
      });
    }
    expect(headerValue(undefined, 'x')).toBeUndefined();
    expect(headerValue({ other: 'x' }, 'x-correlation-id')).toBeUndefined();
  });

  it('generates one when there is none and replaces one that is unsafe', () => {
    const generate = () => 'fresh';
    expect(resolveCorrelationId(undefined, generate)).toEqual({
      correlationId: 'fresh',
      source: 'generated',
    });
    const formulaLeading = ['-AtDYQla9B2HZZx9qa0DVw', '+1+1', '=cmd', '@SUM(1)'];
    for (const unsafe of ['a\r\nb', 'a b', '"quoted"', 'x'.repeat(129), ...formulaLeading, 'é', '']) {
      expect(isValidCorrelationId(unsafe)).toBe(false);
      expect(resolveCorrelationId({ [correlationIdHeader]: unsafe }, generate)).toEqual({
        correlationId: 'fresh',
        source: 'replaced',
      });
    }
    expect(isValidCorrelationId(42)).toBe(false);
    expect(resolveCorrelationId({}).correlationId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('passes the id on to service calls and queue messages, and reads it back from a message', () => {
    expect(correlationHeaders('c-1')).toEqual({ 'x-correlation-id': 'c-1' });
    expect(correlationHeaders(undefined)).toEqual({});
    expect(correlationHeaders('bad\nid')).toEqual({});
    const attributes = correlationMessageAttributes('c-1');
    expect(attributes).toEqual({ 'x-correlation-id': { DataType: 'String', StringValue: 'c-1' } });
    expect(correlationMessageAttributes('bad id')).toEqual({});
    // What the SQS event source mapping hands the worker: lower-camel attribute fields.
    const record = { messageAttributes: { 'x-correlation-id': { stringValue: 'c-1', dataType: 'String' } } };
    expect(correlationIdFromMessage(record)).toBe('c-1');
    expect(
      correlationIdFromMessage({ messageAttributes: { 'x-correlation-id': { stringValue: 'a\r\nb' } } }),
    ).toBeUndefined();
    expect(correlationIdFromMessage({})).toBeUndefined();
  });
});

describe('request and response summaries', () => {
  const capture = { maxLength: 50, parseLimitBytes: 1024, redactor: createRedactor() };

  it('counts body bytes without decoding base64', () => {
    expect(bodyBytes(undefined, false)).toBe(0);
    expect(bodyBytes('héllo', false)).toBe(6);
    expect(bodyBytes(Buffer.from('abcd').toString('base64'), true)).toBe(4);
    expect(bodyBytes(Buffer.from('abcde').toString('base64'), true)).toBe(5);
    expect(bodyBytes(Buffer.from('abc').toString('base64'), true)).toBe(3);
  });

  it('captures text bodies by pattern and base64 text by decoding its head', () => {
    expect(captureBody('', false, 'text/plain', capture)).toBeUndefined();
    expect(captureBody('token=abc&x=1', false, 'text/plain', capture)).toBe('token=[REDACTED]&x=1');
    const encoded = Buffer.from('{"password":"pw","a":1}').toString('base64');
    expect(captureBody(encoded, true, 'application/json', capture)).toBe('{"password":"[REDACTED]","a":1}');
    const big = `password=${'x'.repeat(5000)}`;
    expect(captureBody(big, false, undefined, capture)).toMatch(/^password=\[REDACTED\]/);
  });

  it('captures markup (XML, SOAP, HTML) by its size only: its secrets sit in elements and attributes', () => {
    const login = '<login><user>ada</user><password>correct horse</password></login>';
    const sizeOnly = `[body ${login.length} bytes, not captured: markup cannot be redacted by key]`;
    expect(captureBody(login, false, 'application/xml', capture)).toBe(sizeOnly);
    expect(captureBody(login, false, 'application/soap+xml; charset=utf-8', capture)).toBe(sizeOnly);
    expect(captureBody(Buffer.from(login).toString('base64'), true, 'text/xml', capture)).toBe(sizeOnly);
    expect(captureBody(`  ${login}`, false, 'text/plain', capture)).toBe(
      `[body ${login.length + 2} bytes, not captured: markup cannot be redacted by key]`,
    );
    expect(captureBody('<input name="password" value="hunter2">', false, undefined, capture)).toMatch(
      /^\[body 39 bytes, not captured/,
    );
  });

  it('normalises every result shape API Gateway accepts', () => {
    expect(normalizeResponse(undefined)).toBeUndefined();
    expect(normalizeResponse(null)).toBeUndefined();
    expect(normalizeResponse({ statusCode: 'x' })).toMatchObject({ statusCode: 200, headers: {} });
    expect(normalizeResponse('plain')).toMatchObject({ statusCode: 200, body: 'plain' });
    expect(statusOfError(undefined)).toBe(500);
    expect(statusOfError({ statusCode: 404 })).toBe(404);
    expect(statusOfError({ statusCode: 200 })).toBe(500);
  });
});
