package logad.jvm;

import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * {@link Mask} from the command line, for logad's tests and benchmarks (not used by the jobs).
 *
 * <pre>
 * java -cp logad-jvm.jar logad.jvm.MaskLines scan     &lt; records   # Mask.mask
 * java -cp logad-jvm.jar logad.jvm.MaskLines regex    &lt; records   # the regexes, as regexp_replace ran them
 * java -cp logad-jvm.jar logad.jvm.MaskLines compare  &lt; records   # both; prints the records that differ
 * java -cp logad-jvm.jar logad.jvm.MaskLines time     &lt; records   # records/s of each, warm
 * java -cp logad-jvm.jar logad.jvm.MaskLines patterns              # the rules Mask implements
 * </pre>
 *
 * Records are UTF-8, separated by NUL bytes (a record may hold line breaks); scan and regex write
 * the masked records the same way.
 */
public final class MaskLines {
    private MaskLines() {}

    /** The regex chain: String.replaceAll is Matcher.replaceAll, what Spark's regexp_replace runs. */
    static String regex(String s, Pattern[] rules) {
        for (Pattern p : rules) s = p.matcher(s).replaceAll(Mask.WILDCARD);
        return s;
    }

    static Pattern[] compiled() {
        Pattern[] out = new Pattern[Mask.PATTERNS.length];
        for (int i = 0; i < out.length; i++) out[i] = Pattern.compile(Mask.PATTERNS[i][1]);
        return out;
    }

    static List<String> read(InputStream in) throws IOException {
        byte[] all = in.readAllBytes();
        List<String> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i <= all.length; i++) {
            if (i == all.length || all[i] == 0) {
                if (i > start || i < all.length) out.add(new String(all, start, i - start, StandardCharsets.UTF_8));
                start = i + 1;
            }
        }
        return out;
    }

    public static void main(String[] args) throws IOException {
        String mode = args.length > 0 ? args[0] : "scan";
        if (mode.equals("patterns")) {
            System.out.print(Mask.patterns());
            return;
        }
        List<String> records = read(System.in);
        Pattern[] rules = compiled();
        switch (mode) {
            case "scan", "regex" -> {
                OutputStream out = new BufferedOutputStream(System.out, 1 << 16);
                for (String r : records) {
                    String m = mode.equals("scan") ? Mask.mask(r) : regex(r, rules);
                    out.write(m.getBytes(StandardCharsets.UTF_8));
                    out.write(0);
                }
                out.flush();
            }
            case "compare" -> {
                int differ = 0;
                for (String r : records) {
                    String a = Mask.mask(r), b = regex(r, rules);
                    if (!a.equals(b)) {
                        if (++differ <= 20) {
                            System.out.println("record: " + r + "\n  scan:  " + a + "\n  regex: " + b);
                        }
                    }
                }
                System.out.println("records " + records.size() + " differ " + differ);
                if (differ > 0) System.exit(1);
            }
            case "time" -> {
                long sink = 0;
                double scan = 0, regex = 0;
                for (int round = 0; round < 5; round++) {  // the first rounds warm the JIT up
                    long t = System.nanoTime();
                    for (String r : records) sink += Mask.mask(r).length();
                    scan = Math.max(scan, records.size() / ((System.nanoTime() - t) / 1e9));
                    t = System.nanoTime();
                    for (String r : records) sink += regex(r, rules).length();
                    regex = Math.max(regex, records.size() / ((System.nanoTime() - t) / 1e9));
                }
                System.out.printf("{\"records\": %d, \"scan_rps\": %.0f, \"regex_rps\": %.0f, \"sink\": %d}%n",
                        records.size(), scan, regex, sink);
            }
            default -> {
                System.err.println("usage: MaskLines scan|regex|compare|time < NUL-separated records, or MaskLines patterns");
                System.exit(2);
            }
        }
    }
}
