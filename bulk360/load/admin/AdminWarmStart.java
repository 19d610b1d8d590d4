import java.io.FileOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * neo4j-admin, started before its input files exist (bulk360's admin mode: see warm_start.py).
 *
 * <p>The JVM starts while bulk360 still extracts, loads Neo4j's command-line tool and builds
 * the import command once (its help, printed nowhere), then waits on standard input for the
 * import: the log file's path and then the arguments, separated by NUL characters. It runs them
 * as {@code org.neo4j.cli.AdminTool.main} would, with standard output and error into that log,
 * and exits with neo4j-admin's status. End of input with nothing on it: it exits with 0.
 *
 * <p>Neo4j's classes are reached by reflection, so this file compiles with no Neo4j jar.
 */
public final class AdminWarmStart {

    private AdminWarmStart() {}

    public static void main(String[] unused) throws Exception {
        Path home = Path.of(System.getenv("NEO4J_HOME"));
        Path conf = Path.of(System.getenv("NEO4J_CONF"));
        PrintStream out = System.out;
        PrintStream err = System.err;
        PrintStream nowhere = new PrintStream(OutputStream.nullOutputStream());
        System.setOut(nowhere);
        System.setErr(nowhere);
        try {
            execute(home, conf, "database", "import", "full", "--help");
        } catch (ReflectiveOperationException | RuntimeException warmUpFailed) {
            // The import itself reports what is wrong, with the JVM's own words.
        }
        System.setOut(out);
        System.setErr(err);

        String input = new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        if (input.isEmpty()) {
            System.exit(0);
        }
        String[] parts = input.split("\0", -1);
        PrintStream log = new PrintStream(new FileOutputStream(parts[0]), true, StandardCharsets.UTF_8);
        System.setOut(log);
        System.setErr(log);
        System.exit(execute(home, conf, Arrays.copyOfRange(parts, 1, parts.length)));
    }

    private static int execute(Path home, Path conf, String... arguments)
            throws ReflectiveOperationException {
        Class<?> context = Class.forName("org.neo4j.cli.ExecutionContext");
        Object executionContext = context.getConstructor(Path.class, Path.class).newInstance(home, conf);
        Object status = Class.forName("org.neo4j.cli.AdminTool")
                .getMethod("execute", context, String[].class)
                .invoke(null, executionContext, arguments);
        return (Integer) status;
    }
}
