import { describe, expect, it } from 'vitest';
import { ConfigError, configFromEnv, DEFAULT_CONFIG, redactUrl } from './config.js';

describe('configuration from the environment', () => {
  it('has defaults, and reads each AQ_* variable', () => {
    expect(configFromEnv({})).toMatchObject({ allowedLatenessMs: 60_000, maxFutureMs: 300_000, sustainedMinutes: 5, idleTick: true, mqttTopic: 'aq/+/+', webhooks: [] });
    const config = configFromEnv({
      AQ_ALLOWED_LATENESS_S: '30',
      AQ_MAX_FUTURE_S: '60',
      AQ_MAX_AGE_S: '3600',
      AQ_HYSTERESIS_AQI: '5',
      AQ_SUSTAINED_MINUTES: '3',
      AQ_ALERT_COOLDOWN_S: '0',
      AQ_RETENTION_DAYS: '2',
      AQ_IDLE_TICK: '0',
      AQ_MQTT_TOPIC: 'city/+/+',
      AQ_WEBHOOK_URLS: 'https://hooks.example/a?token=x, http://127.0.0.1:9/b',
      AQ_WEBHOOK_SECRET: 'secret-value',
    });
    expect(config).toMatchObject({ allowedLatenessMs: 30_000, maxFutureMs: 60_000, maxAgeMs: 3_600_000, hysteresisAqi: 5, sustainedMinutes: 3, cooldownMs: 0, retentionMs: 2 * 86_400_000, idleTick: false, mqttTopic: 'city/+/+' });
    expect(config.webhooks.map((w) => [w.url, w.secret, w.id.startsWith('config-')])).toEqual([
      ['https://hooks.example/a?token=x', 'secret-value', true],
      ['http://127.0.0.1:9/b', 'secret-value', true],
    ]);
    expect(configFromEnv({}).anomaly).toEqual(DEFAULT_CONFIG.anomaly);
  });

  it('refuses bad values with the variable named, and webhook URLs without a secret', () => {
    expect(() => configFromEnv({ AQ_ALLOWED_LATENESS_S: 'soon' })).toThrow(new ConfigError('AQ_ALLOWED_LATENESS_S must be a number >= 0, got "soon"'));
    expect(() => configFromEnv({ AQ_SUSTAINED_MINUTES: '0' })).toThrow(/AQ_SUSTAINED_MINUTES must be a number >= 1/);
    expect(() => configFromEnv({ AQ_WEBHOOK_URLS: 'https://hooks.example/a' })).toThrow(/needs AQ_WEBHOOK_SECRET/);
    expect(() => configFromEnv({ AQ_WEBHOOK_URLS: 'ftp://x/secret-path', AQ_WEBHOOK_SECRET: 's' })).toThrow('AQ_WEBHOOK_URLS: "ftp://x/…" is not an http(s) URL');
    expect(() => configFromEnv({ AQ_MQTT_TOPIC: 'aq/#' })).toThrow(/AQ_MQTT_TOPIC must be <prefix>\/\+\/\+/);
  });

  it('redacts URLs to their origin for logs and errors', () => {
    expect(redactUrl('https://hooks.example/T000/B000/XXXX?token=abc')).toBe('https://hooks.example/…');
    expect(redactUrl('not a url')).toBe('(not a URL)');
  });
});
