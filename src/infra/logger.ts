import { pino, type Logger } from 'pino';

export type { Logger };

/** One JSON logger for the process; request loggers are its children. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'medivoy' }, timestamp: pino.stdTimeFunctions.isoTime });
}
