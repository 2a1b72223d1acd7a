/**
 * The air-quality app's settings. `configFromEnv` reads them from AQ_* environment variables
 * (defaults below); tests build their own with `airQualityConfig({...})`.
 *
 *   AQ_MAX_FUTURE_S        300     a reading may be this far ahead of the server clock
 *   AQ_MAX_AGE_S           86400   ... and this far behind it
 *   AQ_ALLOWED_LATENESS_S  60      a minute's windows wait this long (in event time) for late readings
 *   AQ_HYSTERESIS_AQI      10      the AQI must fall this far below a category's floor to leave it downward
 *   AQ_SUSTAINED_MINUTES   5       consecutive minutes at or above AQ_SUSTAINED_AQI that raise an alert
 *   AQ_SUSTAINED_AQI       101     (Unhealthy for Sensitive Groups)
 *   AQ_ALERT_COOLDOWN_S    1800    the same alert is not raised again within this time (event time)
 *   AQ_RETENTION_DAYS      7       readings and windows are kept this long
 *   AQ_IDLE_TICK           1       0: no per-minute tick finalizing windows of locations that fell silent
 *   AQ_MQTT_TOPIC          aq/+/+  topic filter of device readings, <prefix>/<location>/<deviceId>
 *   AQ_WEBHOOK_URLS                comma-separated webhook subscribers, besides POST /subscriptions
 *   AQ_WEBHOOK_SECRET              the HMAC secret for AQ_WEBHOOK_URLS (required with them)
 */
import { createHash } from 'node:crypto';
import { DEFAULT_ANOMALY_OPTIONS, type AnomalyOptions } from './anomaly.js';

export type AlertKind = 'category' | 'sustained' | 'anomaly';
export const ALERT_KINDS: readonly AlertKind[] = ['category', 'sustained', 'anomaly'];

export interface WebhookSubscriber {
  id: string;
  url: string;
  secret: string;
  /** Only these kinds; all when absent. */
  kinds?: AlertKind[];
}

export interface AirQualityConfig {
  maxFutureMs: number;
  maxAgeMs: number;
  allowedLatenessMs: number;
  hysteresisAqi: number;
  sustainedMinutes: number;
  sustainedAqi: number;
  cooldownMs: number;
  retentionMs: number;
  /** Run the per-minute tick that finalizes windows by the wall clock when readings stop. */
  idleTick: boolean;
  mqttTopic: string;
  webhooks: WebhookSubscriber[];
  webhookRetry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  webhookTimeoutMs: number;
  anomaly: AnomalyOptions;
  /** The receiver's clock (clock-skew checks, tick). */
  now: () => number;
}

export const DEFAULT_CONFIG: AirQualityConfig = {
  maxFutureMs: 5 * 60_000,
  maxAgeMs: 24 * 3_600_000,
  allowedLatenessMs: 60_000,
  hysteresisAqi: 10,
  sustainedMinutes: 5,
  sustainedAqi: 101,
  cooldownMs: 30 * 60_000,
  retentionMs: 7 * 24 * 3_600_000,
  idleTick: true,
  mqttTopic: 'aq/+/+',
  webhooks: [],
  webhookRetry: { maxAttempts: 6, baseDelayMs: 1000, maxDelayMs: 5 * 60_000 },
  webhookTimeoutMs: 10_000,
  anomaly: DEFAULT_ANOMALY_OPTIONS,
  now: () => Date.now(),
};

export function airQualityConfig(overrides: Partial<AirQualityConfig> = {}): AirQualityConfig {
  return { ...DEFAULT_CONFIG, ...overrides, anomaly: { ...DEFAULT_ANOMALY_OPTIONS, ...overrides.anomaly } };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Webhook subscribers from configuration get stable ids derived from their URL. */
export function configuredSubscriber(url: string, secret: string): WebhookSubscriber {
  return { id: `config-${createHash('sha256').update(url).digest('hex').slice(0, 12)}`, url, secret };
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AirQualityConfig {
  const seconds = (name: string, fallbackMs: number, min = 0) => number(name, fallbackMs / 1000, min) * 1000;
  function number(name: string, fallback: number, min: number): number {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) throw new ConfigError(`${name} must be a number >= ${min}, got "${raw}"`);
    return value;
  }
  const urls = (env.AQ_WEBHOOK_URLS ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  const secret = env.AQ_WEBHOOK_SECRET ?? '';
  if (urls.length > 0 && secret === '') throw new ConfigError('AQ_WEBHOOK_URLS needs AQ_WEBHOOK_SECRET: the key webhook bodies are signed with');
  for (const url of urls) {
    if (!isWebhookUrl(url)) throw new ConfigError(`AQ_WEBHOOK_URLS: "${redactUrl(url)}" is not an http(s) URL`);
  }
  const mqttTopic = env.AQ_MQTT_TOPIC || DEFAULT_CONFIG.mqttTopic;
  if (!/^[^+#/]+\/\+\/\+$/.test(mqttTopic)) throw new ConfigError(`AQ_MQTT_TOPIC must be <prefix>/+/+ (the levels name the location and the device), got "${mqttTopic}"`);
  return airQualityConfig({
    maxFutureMs: seconds('AQ_MAX_FUTURE_S', DEFAULT_CONFIG.maxFutureMs),
    maxAgeMs: seconds('AQ_MAX_AGE_S', DEFAULT_CONFIG.maxAgeMs, 60),
    allowedLatenessMs: seconds('AQ_ALLOWED_LATENESS_S', DEFAULT_CONFIG.allowedLatenessMs),
    hysteresisAqi: number('AQ_HYSTERESIS_AQI', DEFAULT_CONFIG.hysteresisAqi, 0),
    sustainedMinutes: Math.round(number('AQ_SUSTAINED_MINUTES', DEFAULT_CONFIG.sustainedMinutes, 1)),
    sustainedAqi: number('AQ_SUSTAINED_AQI', DEFAULT_CONFIG.sustainedAqi, 0),
    cooldownMs: seconds('AQ_ALERT_COOLDOWN_S', DEFAULT_CONFIG.cooldownMs),
    retentionMs: number('AQ_RETENTION_DAYS', DEFAULT_CONFIG.retentionMs / 86_400_000, 1) * 86_400_000,
    idleTick: env.AQ_IDLE_TICK !== '0',
    mqttTopic,
    webhooks: urls.map((url) => configuredSubscriber(url, secret)),
  });
}

export function isWebhookUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/** A URL fit for errors and logs: webhook URLs often carry a token in their path or query. */
export function redactUrl(value: string): string {
  try {
    return `${new URL(value).origin}/…`;
  } catch {
    return '(not a URL)';
  }
}
