/* The Pareto view of a report, as a hand-written SVG: quality against model size and against decode speed,
 * two panels with ticked axes, labelled points, the Pareto frontier of each panel, and a legend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/report.h"

/* Layout in SVG user units. */
enum {
    CANVAS_W = 1000,
    PLOT_TOP = 80,
    PLOT_W = 370,
    PLOT_H = 300,
    PANEL0_LEFT = 90,
    PANEL1_LEFT = 590,
    LEGEND_COLUMNS = 3,
    LEGEND_ROW_H = 20
};

/* Tableau 10: distinguishable, and readable when printed in grey. */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define PALETTE_N (sizeof palette / sizeof *palette)

/* One plotted metric: how to read it from a variant, how to show it, and which way is better. */
typedef struct axis_metric {
    const char *label;
    double scale; /* stored value -> shown value */
    int lower_is_better;
    const sq_report_value *(*get)(const sq_report_variant *v);
} axis_metric;

static const sq_report_value *get_size(const sq_report_variant *v) { return &v->size_bytes; }
static const sq_report_value *get_decode(const sq_report_variant *v) { return &v->decode_tok_s; }
static const sq_report_value *get_ppl(const sq_report_variant *v) { return &v->ppl; }
static const sq_report_value *get_kl(const sq_report_variant *v) { return &v->kl; }
static const sq_report_value *get_zero_shot(const sq_report_variant *v) { return &v->zero_shot_avg; }

static const axis_metric size_axis = {"model size (MiB, weights in memory)", 1.0 / (1 << 20), 1, get_size};
static const axis_metric speed_axis = {"decode speed (tokens/s)", 1, 0, get_decode};
/* Quality, in order of preference: the first one any variant has is plotted. */
static const axis_metric quality_axes[] = {
    {"perplexity (lower is better)", 1, 1, get_ppl},
    {"KL divergence from reference (lower is better)", 1, 1, get_kl},
    {"zero-shot average accuracy, % (higher is better)", 100, 0, get_zero_shot},
};

typedef struct axis_range {
    double lo, hi, step; /* shown units; lo and hi are multiples of step */
} axis_range;

/* A 1, 2 or 5 times a power of ten near range/5, and limits widened to whole steps around the data. */
static axis_range nice_range(double lo, double hi, int nonnegative) {
    double span = hi - lo;
    double pad = span > 0 ? 0.08 * span : (fabs(lo) > 0 ? 0.1 * fabs(lo) : 1);
    lo -= pad;
    hi += pad;
    if (nonnegative && lo < 0) lo = 0;
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    return (axis_range){floor(lo / step) * step, ceil(hi / step) * step, step};
}

static int tick_decimals(double step) {
    int d = (int)-floor(log10(step) + 1e-9);
    return d > 0 ? (d > 9 ? 9 : d) : 0;
}

/* Text content or attribute value: XML's five specials escaped, control characters XML forbids dropped. */
static void write_xml_text(FILE *out, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&')
            fputs("&amp;", out);
        else if (c == '<')
            fputs("&lt;", out);
        else if (c == '>')
            fputs("&gt;", out);
        else if (c == '"')
            fputs("&quot;", out);
        else if (c == '\'')
            fputs("&apos;", out);
        else if (c < 0x20 && c != '\t')
            fputc(' ', out);
        else
            fputc(c, out);
    }
}

typedef struct plot_point {
    double x, y; /* shown units */
    int variant;
} plot_point;

typedef struct panel {
    const axis_metric *x_axis, *y_axis;
    const char *title;
    int left; /* x of the plot area's left edge */
} panel;

/* Points of a panel: the variants that have both of its metrics. */
static int collect_points(const sq_report_table *t, const panel *p, plot_point *pts) {
    int n = 0;
    for (int i = 0; i < t->n_variants; i++) {
        const sq_report_value *x = p->x_axis->get(&t->variants[i]), *y = p->y_axis->get(&t->variants[i]);
        if (x->present && y->present)
            pts[n++] = (plot_point){x->value * p->x_axis->scale, y->value * p->y_axis->scale, i};
    }
    return n;
}

/* Orders by x, then y (ascending). */
static int compare_xy(const void *a, const void *b) {
    const plot_point *p = a, *q = b;
    if (p->x != q->x) return (p->x > q->x) - (p->x < q->x);
    return (p->y > q->y) - (p->y < q->y);
}

/* The points no other point beats on both axes, in increasing x. In "cost" coordinates (negated where higher
 * is better) walking from the lowest x cost, a point is on the frontier when its y cost is strictly below
 * that of every point before it. */
static int pareto_frontier(const panel *p, const plot_point *pts, int n, plot_point *front) {
    plot_point *cost = malloc((size_t)n * sizeof *cost);
    if (!cost) return -1;
    double sx = p->x_axis->lower_is_better ? 1 : -1, sy = p->y_axis->lower_is_better ? 1 : -1;
    for (int i = 0; i < n; i++) cost[i] = (plot_point){sx * pts[i].x, sy * pts[i].y, pts[i].variant};
    qsort(cost, (size_t)n, sizeof *cost, compare_xy);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!m || cost[i].y < sy * front[m - 1].y)
            front[m++] = (plot_point){sx * cost[i].x, sy * cost[i].y, cost[i].variant};
    free(cost);
    qsort(front, (size_t)m, sizeof *front, compare_xy);
    return m;
}

static double to_px_x(const panel *p, const axis_range *r, double x) {
    return p->left + (x - r->lo) / (r->hi - r->lo) * PLOT_W;
}
static double to_px_y(const axis_range *r, double y) {
    return PLOT_TOP + PLOT_H - (y - r->lo) / (r->hi - r->lo) * PLOT_H;
}

static void write_axes(FILE *out, const panel *p, const axis_range *rx, const axis_range *ry) {
    int bottom = PLOT_TOP + PLOT_H;
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n",
            p->left, PLOT_TOP, PLOT_W, PLOT_H);
    int dx = tick_decimals(rx->step), dy = tick_decimals(ry->step);
    for (int i = 0; rx->lo + i * rx->step <= rx->hi + rx->step * 1e-6; i++) {
        double v = rx->lo + i * rx->step, px = to_px_x(p, rx, v);
        fprintf(out,
                "<line class=\"grid\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#e6e6e6\"/>\n"
                "<line class=\"tick\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#333\"/>\n"
                "<text class=\"tick-label\" x=\"%.2f\" y=\"%d\" text-anchor=\"middle\" "
                "font-size=\"11\">%.*f</text>\n",
                px, PLOT_TOP, px, bottom, px, bottom, px, bottom + 5, px, bottom + 18, dx, v);
    }
    for (int i = 0; ry->lo + i * ry->step <= ry->hi + ry->step * 1e-6; i++) {
        double v = ry->lo + i * ry->step, py = to_px_y(ry, v);
        fprintf(out,
                "<line class=\"grid\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#e6e6e6\"/>\n"
                "<line class=\"tick\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#333\"/>\n"
                "<text class=\"tick-label\" x=\"%d\" y=\"%.2f\" text-anchor=\"end\" "
                "font-size=\"11\">%.*f</text>\n",
                p->left, py, p->left + PLOT_W, py, p->left - 5, py, p->left, py, p->left - 8, py + 4, dy, v);
    }
    fprintf(out, "<text class=\"axis-label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">",
            p->left + PLOT_W / 2, bottom + 40);
    write_xml_text(out, p->x_axis->label);
    int ly = PLOT_TOP + PLOT_H / 2, lx = p->left - 58;
    fprintf(out,
            "</text>\n<text class=\"axis-label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\" "
            "transform=\"rotate(-90 %d %d)\">",
            lx, ly, lx, ly);
    write_xml_text(out, p->y_axis->label);
    fprintf(out, "</text>\n");
}

/* ---- point labels: each goes where it hides the fewest other labels and points */

typedef struct box {
    double x0, y0, x1, y1;
} box;

typedef struct label_spot {
    double dx, dy; /* text anchor point relative to the point's centre */
    const char *anchor;
} label_spot;

/* Candidates in order of preference: beside the point, then above or below it, then further away. */
static const label_spot label_spots[] = {
    {8, -7, "start"},   {8, 15, "start"},  {-8, -7, "end"},   {-8, 15, "end"},  {0, -11, "middle"},
    {0, 21, "middle"},  {8, -21, "start"}, {8, 29, "start"},  {-8, -21, "end"}, {-8, 29, "end"},
    {0, -25, "middle"}, {0, 35, "middle"}, {8, -35, "start"}, {-8, -35, "end"}, {8, 43, "start"},
};
#define N_SPOTS       (sizeof label_spots / sizeof *label_spots)
#define LABEL_FONT_PX 11
#define POINT_RADIUS  5

static double overlap_area(box a, box b) {
    double w = fmin(a.x1, b.x1) - fmax(a.x0, b.x0), h = fmin(a.y1, b.y1) - fmax(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0;
}

/* Width of a label in the sans-serif font at LABEL_FONT_PX: about 0.58 em per character (UTF-8 code points).
 */
static double label_width(const char *s) {
    int chars = 0;
    for (; *s; s++) chars += ((unsigned char)*s & 0xc0) != 0x80;
    return chars * 0.58 * LABEL_FONT_PX;
}

static box label_box(double px, double py, const label_spot *spot, double width) {
    double x = px + spot->dx, y = py + spot->dy;
    double x0 = spot->anchor[0] == 's' ? x : spot->anchor[0] == 'e' ? x - width : x - width / 2;
    return (box){x0, y - 0.8 * LABEL_FONT_PX, x0 + width, y + 0.25 * LABEL_FONT_PX};
}

/* Greedy: labels are placed in point order, each at the candidate spot that overlaps least with the points,
 * the labels already placed and the area outside the plot (weighted, so labels stay inside). */
static void place_labels(const panel *p, const double *px, const double *py, const double *width, int n,
                         box *placed, const label_spot **chosen) {
    box plot = {p->left, PLOT_TOP, p->left + PLOT_W, PLOT_TOP + PLOT_H};
    for (int i = 0; i < n; i++) {
        double best_cost = INFINITY;
        for (size_t s = 0; s < N_SPOTS; s++) {
            box b = label_box(px[i], py[i], &label_spots[s], width[i]);
            double area = (b.x1 - b.x0) * (b.y1 - b.y0), cost = 4 * (area - overlap_area(b, plot));
            for (int j = 0; j < n; j++) {
                box dot = {px[j] - POINT_RADIUS, py[j] - POINT_RADIUS, px[j] + POINT_RADIUS,
                           py[j] + POINT_RADIUS};
                cost += overlap_area(b, dot);
            }
            for (int j = 0; j < i; j++) cost += overlap_area(b, placed[j]);
            if (cost < best_cost - 1e-9) best_cost = cost, placed[i] = b, chosen[i] = &label_spots[s];
        }
    }
}

/* The points and their labels; returns -1 when out of memory. */
static int write_points(FILE *out, const sq_report_table *t, const panel *p, const axis_range *rx,
                        const axis_range *ry, const plot_point *pts, int n) {
    double *px = malloc((size_t)n * 3 * sizeof *px);
    box *placed = malloc((size_t)n * sizeof *placed);
    const label_spot **chosen = malloc((size_t)n * sizeof *chosen);
    if (!px || !placed || !chosen) {
        free(px), free(placed), free(chosen);
        return -1;
    }
    double *py = px + n, *width = py + n;
    for (int i = 0; i < n; i++) {
        px[i] = to_px_x(p, rx, pts[i].x);
        py[i] = to_px_y(ry, pts[i].y);
        width[i] = label_width(t->variants[pts[i].variant].name);
    }
    place_labels(p, px, py, width, n, placed, chosen);
    for (int i = 0; i < n; i++) {
        const char *name = t->variants[pts[i].variant].name;
        fprintf(out, "<circle class=\"point\" data-variant=\"");
        write_xml_text(out, name);
        fprintf(out, "\" cx=\"%.2f\" cy=\"%.2f\" r=\"%d\" fill=\"%s\" stroke=\"#222\"/>\n", px[i], py[i],
                POINT_RADIUS, palette[(size_t)pts[i].variant % PALETTE_N]);
        fprintf(out,
                "<text class=\"point-label\" paint-order=\"stroke\" stroke=\"white\" stroke-width=\"3\" "
                "x=\"%.2f\" y=\"%.2f\" font-size=\"%d\" text-anchor=\"%s\">",
                px[i] + chosen[i]->dx, py[i] + chosen[i]->dy, LABEL_FONT_PX, chosen[i]->anchor);
        write_xml_text(out, name);
        fprintf(out, "</text>\n");
    }
    free(px), free(placed), free(chosen);
    return 0;
}

static SQ_NODISCARD sq_error *write_panel(FILE *out, const sq_report_table *t, const panel *p,
                                          const char *id) {
    fprintf(out,
            "<g class=\"panel\" id=\"%s\">\n<text x=\"%d\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">",
            id, p->left, PLOT_TOP - 12);
    write_xml_text(out, p->title);
    fprintf(out, "</text>\n");
    plot_point *pts = malloc(((size_t)t->n_variants + 1) * 2 * sizeof *pts);
    if (!pts) return sq_errorf(SQ_ERR_NOMEM, "report: out of memory");
    plot_point *front = pts + t->n_variants + 1;
    int n = collect_points(t, p, pts);
    if (n == 0) {
        fprintf(out,
                "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n"
                "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\" fill=\"#666\">no variant "
                "has both ",
                p->left, PLOT_TOP, PLOT_W, PLOT_H, p->left + PLOT_W / 2, PLOT_TOP + PLOT_H / 2);
        write_xml_text(out, p->x_axis == &size_axis ? "a size" : "a decode speed");
        fprintf(out, " and this quality metric</text>\n</g>\n");
        free(pts);
        return NULL;
    }
    double xmin = pts[0].x, xmax = pts[0].x, ymin = pts[0].y, ymax = pts[0].y;
    for (int i = 1; i < n; i++) {
        xmin = fmin(xmin, pts[i].x), xmax = fmax(xmax, pts[i].x);
        ymin = fmin(ymin, pts[i].y), ymax = fmax(ymax, pts[i].y);
    }
    axis_range rx = nice_range(xmin, xmax, 1), ry = nice_range(ymin, ymax, 1);
    write_axes(out, p, &rx, &ry);
    int m = pareto_frontier(p, pts, n, front);
    if (m < 0) {
        free(pts);
        return sq_errorf(SQ_ERR_NOMEM, "report: out of memory");
    }
    if (m > 1) {
        fprintf(out, "<polyline class=\"frontier\" fill=\"none\" stroke=\"#555\" stroke-width=\"1.5\" "
                     "stroke-dasharray=\"6 4\" points=\"");
        for (int i = 0; i < m; i++)
            fprintf(out, "%s%.2f,%.2f", i ? " " : "", to_px_x(p, &rx, front[i].x), to_px_y(&ry, front[i].y));
        fprintf(out, "\"/>\n");
    }
    /* a ring marks each frontier point, so that a frontier of one point shows too */
    for (int i = 0; i < m; i++)
        fprintf(
            out,
            "<circle class=\"frontier-mark\" cx=\"%.2f\" cy=\"%.2f\" r=\"%d\" fill=\"none\" stroke=\"#555\" "
            "stroke-width=\"1.5\"/>\n",
            to_px_x(p, &rx, front[i].x), to_px_y(&ry, front[i].y), POINT_RADIUS + 4);
    if (write_points(out, t, p, &rx, &ry, pts, n)) {
        free(pts);
        return sq_errorf(SQ_ERR_NOMEM, "report: out of memory");
    }
    fprintf(out, "</g>\n");
    free(pts);
    return NULL;
}

/* Whether a variant appears in either panel. */
static int is_plotted(const sq_report_variant *v, const axis_metric *quality) {
    return quality->get(v)->present && (size_axis.get(v)->present || speed_axis.get(v)->present);
}

static int n_plotted(const sq_report_table *t, const axis_metric *quality) {
    int n = 0;
    for (int i = 0; i < t->n_variants; i++) n += is_plotted(&t->variants[i], quality);
    return n;
}

/* The frontier's line style, then a swatch per plotted variant, in rows of LEGEND_COLUMNS. */
static void write_legend(FILE *out, const sq_report_table *t, const axis_metric *quality, int top) {
    fprintf(out, "<g class=\"legend\">\n");
    fprintf(out,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\" stroke-width=\"1.5\" "
            "stroke-dasharray=\"6 4\"/>\n<circle cx=\"%d\" cy=\"%d\" r=\"%d\" fill=\"none\" stroke=\"#555\" "
            "stroke-width=\"1.5\"/>\n<text x=\"%d\" y=\"%d\" font-size=\"12\">Pareto frontier</text>\n",
            PANEL0_LEFT - 6, top + 6, PANEL0_LEFT + 30, top + 6, PANEL0_LEFT + 12, top + 6, POINT_RADIUS + 4,
            PANEL0_LEFT + 36, top + 10);
    int slot = 1;
    for (int i = 0; i < t->n_variants; i++) {
        if (!is_plotted(&t->variants[i], quality)) continue;
        int col = slot % LEGEND_COLUMNS, row = slot / LEGEND_COLUMNS;
        slot++;
        int x = PANEL0_LEFT + col * ((CANVAS_W - PANEL0_LEFT) / LEGEND_COLUMNS), y = top + row * LEGEND_ROW_H;
        fprintf(out,
                "<rect class=\"legend-swatch\" x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\" "
                "stroke=\"#222\"/>\n<text x=\"%d\" y=\"%d\" font-size=\"12\">",
                x + 6, y, palette[(size_t)i % PALETTE_N], x + 30, y + 10);
        write_xml_text(out, t->variants[i].name);
        fprintf(out, "</text>\n");
    }
    fprintf(out, "</g>\n");
}

sq_error *sq_report_write_svg(const sq_report_table *t, const char *title, FILE *out) {
    const axis_metric *quality = NULL;
    for (size_t q = 0; !quality && q < sizeof quality_axes / sizeof *quality_axes; q++)
        for (int i = 0; !quality && i < t->n_variants; i++)
            if (quality_axes[q].get(&t->variants[i])->present) quality = &quality_axes[q];
    if (!quality)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "report: nothing to plot: no report gives a quality metric (ppl, KL or "
                         "zero-shot accuracy); give ppl or eval reports besides bench ones");
    panel panels[2] = {{&size_axis, quality, "Quality against size", PANEL0_LEFT},
                       {&speed_axis, quality, "Quality against decode speed", PANEL1_LEFT}};
    int legend_top = PLOT_TOP + PLOT_H + 70;
    int legend_rows = (n_plotted(t, quality) + 1 + LEGEND_COLUMNS - 1) / LEGEND_COLUMNS;
    int height = legend_top + legend_rows * LEGEND_ROW_H + 10;
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
            "<text class=\"title\" x=\"%d\" y=\"32\" text-anchor=\"middle\" font-size=\"18\" "
            "font-weight=\"bold\">",
            CANVAS_W, height, CANVAS_W, height, CANVAS_W, height, CANVAS_W / 2);
    write_xml_text(out, title ? title : "squeeze report");
    fprintf(out, "</text>\n");
    SQ_TRY(write_panel(out, t, &panels[0], "panel-size"));
    SQ_TRY(write_panel(out, t, &panels[1], "panel-speed"));
    write_legend(out, t, quality, legend_top);
    fprintf(out, "</svg>\n");
    return ferror(out) ? sq_errorf(SQ_ERR_IO, "report: writing the SVG failed") : NULL;
}
