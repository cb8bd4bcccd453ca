package logad.jvm;

/**
 * logad's default masking rules ({@code logad.templates.masking.DEFAULT_RULES}) as one call per
 * line, without a regex engine: what Spark's chain of ten {@code regexp_replace} did, with the same
 * result on every input.
 *
 * <p>The line is read once to see which characters it holds; a rule whose match needs a character
 * the line lacks is skipped (most lines skip most rules). Each remaining rule is a hand-written
 * matcher that tries each position the way {@code java.util.regex.Matcher.replaceAll} does:
 * leftmost first, the rule's lookbehind and lookahead on the text as the previous rules left it,
 * the next search from the end of a match. Where the regex could backtrack, the comment at the
 * matcher says why the first match it finds is the one written here.
 *
 * <p>Character classes are Java's defaults, ASCII only ({@code \d} = [0-9], {@code \s} =
 * [ \t\n\x0B\f\r]); the Python side compiles its rules with {@code re.ASCII} to agree.
 *
 * <p>{@link #PATTERNS} lists the patterns this class implements. logad uses it only when they are
 * exactly the rules in use (any other rule set runs as regexes), and its tests compare it with the
 * regexes line by line.
 *
 * <p>Called from Spark SQL as {@code java_method('logad.jvm.Mask', 'mask', content)}.
 */
public final class Mask {
    public static final String WILDCARD = "<*>";

    /** The rules implemented here, in order: name, then pattern (logad.templates.masking). */
    public static final String[][] PATTERNS = {
        {"url", "(?<=://)[^\\s,;)\\]'\\\"]+"},
        {"path", "(?<![A-Za-z0-9_:>.])(?:/[A-Za-z0-9_.$@~+-]+){2,}/?"},
        {"block_id", "blk_-?\\d+"},
        {"host_port", "(?<![A-Za-z0-9_.<])[A-Za-z][A-Za-z0-9]*(?:[.-][A-Za-z0-9]+)+(?=[:/]\\d)"},
        {"ip", "(?<![A-Za-z0-9_.<>])/?\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}(?![A-Za-z0-9_>])"},
        {"hex", "(?<![A-Za-z0-9_.<])0x[0-9a-fA-F]+(?![A-Za-z0-9_>])"},
        {"uuid", "(?<![A-Za-z0-9_.<])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![A-Za-z0-9_>])"},
        {"id", "(?<![A-Za-z0-9_.<])(?=[A-Za-z0-9_]*\\d)[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?![A-Za-z0-9_>])"},
        {"size", "(?<![A-Za-z0-9_.<])\\d+(?:\\.\\d+)?\\s?[KMGT]?B(?![A-Za-z0-9_>])"},
        {"number", "(?<![A-Za-z0-9_<])[-+]?\\d+(?:\\.\\d+)*(?![A-Za-z0-9_>])"},
    };

    private Mask() {}

    /** {@link #PATTERNS} as lines of "name TAB pattern": what logad compares with its rules. */
    public static String patterns() {
        StringBuilder out = new StringBuilder();
        for (String[] rule : PATTERNS) out.append(rule[0]).append('\t').append(rule[1]).append('\n');
        return out.toString();
    }

    // ---- ASCII character classes, one bit each ------------------------------------------------
    private static final int DIGIT = 1, LETTER = 2, HEX = 4, PATH = 8, SPACE = 16, URL_STOP = 32;
    private static final byte[] CLASS = new byte[128];

    static {
        for (char c = '0'; c <= '9'; c++) CLASS[c] |= DIGIT | HEX | PATH;
        for (char c = 'a'; c <= 'z'; c++) CLASS[c] |= LETTER | PATH;
        for (char c = 'A'; c <= 'Z'; c++) CLASS[c] |= LETTER | PATH;
        for (char c = 'a'; c <= 'f'; c++) CLASS[c] |= HEX;
        for (char c = 'A'; c <= 'F'; c++) CLASS[c] |= HEX;
        for (char c : "_.$@~+-".toCharArray()) CLASS[c] |= PATH;
        for (char c : " \t\n\u000B\f\r".toCharArray()) CLASS[c] |= SPACE | URL_STOP;
        for (char c : ",;)]'\"".toCharArray()) CLASS[c] |= URL_STOP;
    }

    private static boolean is(char c, int cls) {
        return c < 128 && (CLASS[c] & cls) != 0;
    }

    private static boolean digit(char c) {
        return c >= '0' && c <= '9';
    }

    private static boolean alnum(char c) {
        return is(c, DIGIT | LETTER);
    }

    /** [A-Za-z0-9_] */
    private static boolean word(char c) {
        return c == '_' || alnum(c);
    }

    /** The lookahead most rules share: (?![A-Za-z0-9_>]) at i. */
    private static boolean endOk(char[] s, int n, int i) {
        if (i >= n) return true;
        char c = s[i];
        return !(word(c) || c == '>');
    }

    // ---- the rules, in order ----------------------------------------------------------------
    private static final int URL = 0, PATH_R = 1, BLOCK = 2, HOST_PORT = 3, IP = 4, HEX_R = 5, UUID = 6,
            ID = 7, SIZE = 8, NUMBER = 9;

    /** Two char buffers per thread: each rule reads one and writes the other. */
    private static final class Buffers {
        char[] line = new char[512], spare = new char[512];
        int swaps;

        char[] spare(int capacity) {
            if (spare.length < capacity) spare = new char[Math.max(capacity, 2 * spare.length)];
            return spare;
        }

        void swap() {
            char[] t = line;
            line = spare;
            spare = t;
            swaps++;
        }
    }

    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

    /** The line with every default rule applied in order; null stays null. */
    public static String mask(String s) {
        if (s == null) return null;
        int n = s.length();
        Buffers buffers = BUFFERS.get();
        if (buffers.line.length < n) buffers.line = new char[Math.max(n, 2 * buffers.line.length)];
        s.getChars(0, n, buffers.line, 0);
        int swaps = buffers.swaps;
        int m = rules(buffers, n);
        return buffers.swaps == swaps ? s : new String(buffers.line, 0, m);
    }

    /** Every rule in order over the first n chars of buffers.line; the new length. */
    private static int rules(Buffers buffers, int n) {
        boolean digits = false, slash = false, colon = false, dot = false, dash = false, under = false,
                bigB = false, x = false;
        int dashes = 0;
        char[] line = buffers.line;
        for (int i = 0; i < n; i++) {
            char c = line[i];
            if (c <= '9') {
                if (c >= '0') digits = true;
                else if (c == '/') slash = true;
                else if (c == '.') dot = true;
                else if (c == '-') { dash = true; dashes++; }
            } else if (c == ':') colon = true;
            else if (c == '_') under = true;
            else if (c == 'B') bigB = true;
            else if (c == 'x') x = true;
        }
        // Each guard names characters every match of the rule holds; a rule only ever writes
        // "<*>", so a character absent from the line stays absent.
        int m = n;
        if (slash && colon) m = rule(URL, buffers, m);
        if (slash) m = rule(PATH_R, buffers, m);
        if (digits && under) m = rule(BLOCK, buffers, m);
        if (digits && (colon || slash) && (dot || dash)) m = rule(HOST_PORT, buffers, m);
        if (digits && dot) m = rule(IP, buffers, m);
        if (digits && x) m = rule(HEX_R, buffers, m);
        if (dashes >= 4) m = rule(UUID, buffers, m);
        if (digits && under) m = rule(ID, buffers, m);
        if (digits && bigB) m = rule(SIZE, buffers, m);
        if (digits) m = rule(NUMBER, buffers, m);
        return m;
    }

    /** Per rule: may a match start with this ASCII character. */
    private static final boolean[][] FIRST = new boolean[10][128];
    /** Per rule: its lookbehind refuses this ASCII character just before the start. */
    private static final boolean[][] NOT_AFTER = new boolean[10][128];

    private static void table(boolean[] t, String chars, int classes) {
        for (char c : chars.toCharArray()) t[c] = true;
        for (char c = 0; c < 128; c++) if ((CLASS[c] & classes) != 0) t[c] = true;
    }

    static {
        String word = "_";
        int alnum = DIGIT | LETTER;
        table(FIRST[PATH_R], "/", 0);
        table(NOT_AFTER[PATH_R], word + ":>.", alnum);
        table(FIRST[BLOCK], "b", 0);
        for (int r : new int[] {HOST_PORT, ID}) {
            table(FIRST[r], "", LETTER);
            table(NOT_AFTER[r], word + ".<", alnum);
        }
        table(FIRST[IP], "/", DIGIT);
        table(NOT_AFTER[IP], word + ".<>", alnum);
        table(FIRST[HEX_R], "0", 0);
        table(NOT_AFTER[HEX_R], word + ".<", alnum);
        table(FIRST[UUID], "", HEX);
        table(NOT_AFTER[UUID], word + ".<", alnum);
        table(FIRST[SIZE], "", DIGIT);
        table(NOT_AFTER[SIZE], word + ".<", alnum);
        table(FIRST[NUMBER], "-+", DIGIT);
        table(NOT_AFTER[NUMBER], word + "<", alnum);
    }

    /**
     * Matcher.replaceAll of one rule over the first n chars of buffers.line: every leftmost match,
     * left to right, replaced by the wildcard into the spare buffer, which becomes the line. The
     * line's new length (n, buffers untouched, when nothing matched). Positions whose character
     * cannot start a match, or whose previous character the lookbehind refuses, are skipped by
     * two table lookups.
     */
    private static int rule(int rule, Buffers buffers, int n) {
        char[] s = buffers.line;
        char[] out = null;
        boolean[] first = FIRST[rule], notAfter = NOT_AFTER[rule];
        boolean url = rule == URL;
        int last = 0, o = 0, i = 0;
        while (i < n) {
            char c = s[i];
            boolean may = url
                ? i >= 3 && s[i - 1] == '/' && s[i - 2] == '/' && s[i - 3] == ':' && !is(c, URL_STOP)
                : c < 128 && first[c] && (i == 0 || s[i - 1] >= 128 || !notAfter[s[i - 1]]);
            int end = may ? at(rule, s, n, i) : -1;
            if (end > i) {
                if (out == null) out = buffers.spare(3 * n + 3);  // a match of 1 char becomes 3
                System.arraycopy(s, last, out, o, i - last);
                o += i - last;
                out[o++] = '<';
                out[o++] = '*';
                out[o++] = '>';
                last = i = end;
            } else {
                i++;
            }
        }
        if (out == null) return n;
        System.arraycopy(s, last, out, o, n - last);
        buffers.swap();
        return o + n - last;
    }

    /** The end of the rule's match at i (its start already checked by {@link #starts}), or -1. */
    private static int at(int rule, char[] s, int n, int i) {
        switch (rule) {
            case URL: return url(s, n, i);
            case PATH_R: return path(s, n, i);
            case BLOCK: return blockId(s, n, i);
            case HOST_PORT: return hostPort(s, n, i);
            case IP: return ip(s, n, i);
            case HEX_R: return hex(s, n, i);
            case UUID: return uuid(s, n, i);
            case ID: return id(s, n, i);
            case SIZE: return size(s, n, i);
            case NUMBER: return number(s, n, i);
            default: throw new IllegalArgumentException("rule " + rule);
        }
    }

    /** url: (?<=://)[^\s,;)\]'"]+ , the run after "://". */
    private static int url(char[] s, int n, int i) {
        int k = i;
        while (k < n && !is(s[k], URL_STOP)) k++;
        return k;
    }

    /**
     * path: (?<![A-Za-z0-9_:>.])(?:/[A-Za-z0-9_.$@~+-]+){2,}/? . Segments cannot contain '/', so
     * each greedy segment ends where the next '/' (or a non-path character) is: the match is every
     * segment in a row, then one '/' if there is one.
     */
    private static int path(char[] s, int n, int i) {
        int k = i, segments = 0;
        while (k + 1 < n && s[k] == '/' && is(s[k + 1], PATH)) {
            k += 2;
            while (k < n && is(s[k], PATH)) k++;
            segments++;
        }
        if (segments < 2) return -1;
        return k < n && s[k] == '/' ? k + 1 : k;
    }

    /** block_id: blk_-?\d+ (a '-' not followed by a digit fails both ways). */
    private static int blockId(char[] s, int n, int i) {
        if (i + 4 >= n || s[i + 1] != 'l' || s[i + 2] != 'k' || s[i + 3] != '_') return -1;
        int k = i + 4;
        if (s[k] == '-') k++;
        if (k >= n || !digit(s[k])) return -1;
        while (k < n && digit(s[k])) k++;
        return k;
    }

    /**
     * host_port: a name with dots or hyphens before :port or /address. A shorter match than the
     * greedy one ends before a letter, digit, '.' or '-', never before [:/]\d, so the greedy one
     * is the only candidate.
     */
    private static int hostPort(char[] s, int n, int i) {
        int k = i + 1, segments = 0;
        while (k < n && alnum(s[k])) k++;
        while (k + 1 < n && (s[k] == '.' || s[k] == '-') && alnum(s[k + 1])) {
            k += 2;
            while (k < n && alnum(s[k])) k++;
            segments++;
        }
        if (segments == 0 || k + 1 >= n) return -1;
        char c = s[k];
        return (c == ':' || c == '/') && digit(s[k + 1]) ? k : -1;
    }

    /**
     * ip: four groups of one to three digits. A group followed by another digit fails (a shorter
     * take is followed by a digit too), so each group is its whole run of digits. Without the
     * optional '/', a match at a '/' would have to start with a digit: none.
     */
    private static int ip(char[] s, int n, int i) {
        int k = s[i] == '/' ? i + 1 : i;
        for (int group = 0; group < 4; group++) {
            if (group > 0) {
                if (k >= n || s[k] != '.') return -1;
                k++;
            }
            int start = k;
            while (k < n && digit(s[k])) k++;
            if (k == start || k - start > 3) return -1;
        }
        return endOk(s, n, k) ? k : -1;
    }

    /** hex: 0x and hex digits; a shorter run is followed by a hex digit, which the end refuses. */
    private static int hex(char[] s, int n, int i) {
        if (i + 2 >= n || s[i + 1] != 'x') return -1;
        int k = i + 2;
        while (k < n && is(s[k], HEX)) k++;
        return k > i + 2 && endOk(s, n, k) ? k : -1;
    }

    private static final int[] UUID_GROUPS = {8, 4, 4, 4, 12};

    /** uuid: 8-4-4-4-12 hex digits, exactly. */
    private static int uuid(char[] s, int n, int i) {
        int k = i;
        for (int group = 0; group < UUID_GROUPS.length; group++) {
            if (group > 0) {
                if (k >= n || s[k] != '-') return -1;
                k++;
            }
            for (int j = 0; j < UUID_GROUPS[group]; j++, k++) {
                if (k >= n || !is(s[k], HEX)) return -1;
            }
        }
        return endOk(s, n, k) ? k : -1;
    }

    /**
     * id: words joined by '_' with a digit somewhere. A match must end before a character outside
     * [A-Za-z0-9_>], so it is the whole run of word characters from i, and the lookahead's digit
     * lies in it.
     */
    private static int id(char[] s, int n, int i) {
        int k = i + 1, segments = 0;
        while (k < n && alnum(s[k])) k++;
        while (k + 1 < n && s[k] == '_' && alnum(s[k + 1])) {
            k += 2;
            while (k < n && alnum(s[k])) k++;
            segments++;
        }
        if (segments == 0 || !endOk(s, n, k)) return -1;
        for (int j = i; j < k; j++) {
            if (digit(s[j])) return k;
        }
        return -1;
    }

    /**
     * size: \d+(?:\.\d+)?\s?[KMGT]?B. Every optional part is taken when it is there: leaving it
     * out puts its own character where only the next part's may stand.
     */
    private static int size(char[] s, int n, int i) {
        int k = i;
        while (k < n && digit(s[k])) k++;
        if (k + 1 < n && s[k] == '.' && digit(s[k + 1])) {
            k += 2;
            while (k < n && digit(s[k])) k++;
        }
        if (k < n && is(s[k], SPACE)) k++;
        if (k < n && (s[k] == 'K' || s[k] == 'M' || s[k] == 'G' || s[k] == 'T')) k++;
        if (k >= n || s[k] != 'B') return -1;
        return endOk(s, n, k + 1) ? k + 1 : -1;
    }

    /**
     * number: [-+]?\d+(?:\.\d+)* with its own lookbehind (a '.' may precede it). When the greedy
     * match is refused by the lookahead, the regex gives back the last ".digits" group: the
     * shorter match then ends before a '.', which the lookahead accepts.
     */
    private static int number(char[] s, int n, int i) {
        int k = i;
        if (s[k] == '-' || s[k] == '+') k++;
        if (k >= n || !digit(s[k])) return -1;
        while (k < n && digit(s[k])) k++;
        int before = -1;
        while (k + 1 < n && s[k] == '.' && digit(s[k + 1])) {
            before = k;
            k += 2;
            while (k < n && digit(s[k])) k++;
        }
        return endOk(s, n, k) ? k : before;
    }
}
