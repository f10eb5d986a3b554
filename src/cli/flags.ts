/** Global flags every command may consult; set once by runCli before the command runs. */
export const cliFlags = { debug: false };
