import { MAX_NAME_BYTES } from "../../src/fs/safe-path.ts";

/**
 * The traversal corpus every layer is tested against (server and client
 * side): paths the wire rules refuse on every OS.
 */
export const HOSTILE_PATHS: readonly string[] = [
	"../x",
	"..",
	"a/../../x",
	"a/..",
	"./x",
	"a/./b",
	"/etc/passwd",
	"//server/share",
	"a\\..\\x",
	"..\\x",
	"a\u0000b",
	"a\nb",
	"a\rb",
	"\u001b[31mred",
	"tab\there",
	"del\u007f",
	"c1\u0085",
	"a//b",
	"a/",
	"/",
	"x".repeat(MAX_NAME_BYTES + 1),
	`${"a/".repeat(2100)}a`,
	"\ud800",
	"file.pairlink-part",
	"a/.b.pairlink-part",
];

/**
 * Names only a Windows receiver refuses (SPEC "Names"): two Linux machines
 * move them unchanged; a receiver whose platform is win32 refuses each, file
 * by file.
 */
export const WINDOWS_ONLY_PATHS: readonly string[] = [
	"C:x",
	"c:x/y",
	"CON",
	"con",
	"nul.txt",
	"NUL",
	"COM1",
	"lpt9.log",
	"aux.tar.gz",
	"a/PRN/b",
	"conin$",
	"a\uff1ab", // fullwidth colon: Windows' best-fit mapping turns it into ":"
	"a\uff3cb", // fullwidth reverse solidus: into "\\"
	"a/\uff0f/b",
	"trailing.",
	"trailing ",
	"dots...",
	"star*",
	'quote"',
	"pipe|",
	"q?",
	"lt<",
	"gt>",
	"Meeting notes: 2026.txt",
];
