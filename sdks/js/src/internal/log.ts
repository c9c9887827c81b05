/** Where the clients write what happens in the background. */
export interface Logger {
  debug(message: string, ...details: unknown[]): void;
  info(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
}

/** The default: warnings and errors to the console, prefixed `[vexil]`; nothing else. */
export const consoleLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: (message, ...details) => console.warn(`[vexil] ${message}`, ...details),
  error: (message, ...details) => console.error(`[vexil] ${message}`, ...details),
};

/** A logger that discards everything. */
export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
