import { pino, destination, type Logger as PinoLogger, type LevelWithSilent } from 'pino';

export type Logger = PinoLogger;
export type LogLevel = LevelWithSilent;

/**
 * Structured logs on stderr. Scope with `logger.child({ projectId, runId, agentId })`.
 * Prompts, model answers and secrets are never logged; the redact list is a second line
 * of defence for fields that should not carry them anyway.
 */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: ['apiKey', '*.apiKey', 'authorization', '*.authorization', 'headers.authorization', 'token', '*.token'],
        censor: '[redacted]',
      },
    },
    destination({ fd: 2, sync: false }),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
