/*
 * plan.c — planning: which WHERE conditions become request parameters, estimates,
 * and the ForeignScan plan node.
 *
 * Conditions are recognised here, but their values are computed at execution time
 * (fdw_exprs), so prepared-statement parameters and stable expressions work.
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "access/table.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "thingspace_fdw.h"

/* Planner-side state of one foreign relation. */
typedef struct TsPlanState
{
	TsServerOptions srv;
	TsTableOptions tbl;
	List	   *cond_columns;	/* IntList of TsColumn */
	List	   *cond_ops;		/* IntList of TsCondOp */
	List	   *cond_arrays;	/* IntList: 1 when the value is an array (= ANY) */
	List	   *cond_exprs;		/* value expressions, evaluated at execution */
	List	   *attnos;			/* IntList of attributes the scan must produce */
	double		est_requests;
} TsPlanState;

/* Per-request row guesses: enough to keep join planning sensible. */
#define TS_ROWS_LINE_LEVEL_DEVICES 1000.0
#define TS_SEGMENTS_PER_SCOPE 3.0
#define TS_COUNTRIES_PER_SEGMENT 4.0
/* A request costs a round trip plus a callback: far more than any local work. */
#define TS_COST_PER_REQUEST 10000.0
#define TS_COST_PER_ROW 0.05

static bool
is_request_key(int col)
{
	return col == TSC_ACCOUNT_NAME || col == TSC_BILLING_FROM || col == TSC_BILLING_TO ||
		col == TSC_LINE_LEVEL || col == TSC_DEVICE_KIND || col == TSC_DEVICE_ID ||
		col == TSC_LABEL_NAME || col == TSC_LABEL_VALUE;
}

/* The contract column behind a Var of this relation, or -1. */
static int
var_column(Node *node, RelOptInfo *baserel, const int *attcols, int natts)
{
	Var		   *var;

	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	if (node == NULL || !IsA(node, Var))
		return -1;
	var = (Var *) node;
	if (var->varno != baserel->relid || var->varlevelsup != 0 ||
		var->varattno <= 0 || var->varattno > natts)
		return -1;
	return attcols[var->varattno - 1];
}

static bool
is_runtime_constant(Expr *expr)
{
	return !contain_var_clause((Node *) expr) && !contain_volatile_functions((Node *) expr);
}

static bool
op_from_name(Oid opno, bool commuted, TsCondOp *op)
{
	char	   *name = get_opname(opno);

	if (name == NULL)
		return false;
	if (strcmp(name, "=") == 0)
		*op = TS_OP_EQ;
	else if (strcmp(name, "<") == 0)
		*op = commuted ? TS_OP_GT : TS_OP_LT;
	else if (strcmp(name, "<=") == 0)
		*op = commuted ? TS_OP_GE : TS_OP_LE;
	else if (strcmp(name, ">") == 0)
		*op = commuted ? TS_OP_LT : TS_OP_GT;
	else if (strcmp(name, ">=") == 0)
		*op = commuted ? TS_OP_LE : TS_OP_GE;
	else
		return false;
	return true;
}

static void
add_cond(TsPlanState *ps, int col, TsCondOp op, bool is_array, Expr *expr)
{
	ps->cond_columns = lappend_int(ps->cond_columns, col);
	ps->cond_ops = lappend_int(ps->cond_ops, op);
	ps->cond_arrays = lappend_int(ps->cond_arrays, is_array ? 1 : 0);
	ps->cond_exprs = lappend(ps->cond_exprs, expr);

	/* equality lists multiply the requests; count constant arrays exactly */
	if (op == TS_OP_EQ && is_array && IsA(expr, Const) && !((Const *) expr)->constisnull &&
		(col == TSC_ACCOUNT_NAME || col == TSC_BILLING_FROM || col == TSC_BILLING_TO))
	{
		ArrayType  *arr = DatumGetArrayTypeP(((Const *) expr)->constvalue);

		ps->est_requests *= Max(ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)), 1);
	}
}

static Expr *
bool_const(bool value)
{
	return (Expr *) makeBoolConst(value, false);
}

/* Recognise one restriction clause as a request condition. */
static void
classify_clause(TsPlanState *ps, Expr *clause, RelOptInfo *baserel, const int *attcols, int natts)
{
	int			col;

	if (IsA(clause, OpExpr) && list_length(((OpExpr *) clause)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) clause;
		Expr	   *left = linitial(op->args),
				   *right = lsecond(op->args);
		TsCondOp	cop;

		if ((col = var_column((Node *) left, baserel, attcols, natts)) >= 0 &&
			is_request_key(col) && is_runtime_constant(right) && op_from_name(op->opno, false, &cop))
			add_cond(ps, col, cop, false, right);
		else if ((col = var_column((Node *) right, baserel, attcols, natts)) >= 0 &&
				 is_request_key(col) && is_runtime_constant(left) && op_from_name(op->opno, true, &cop))
			add_cond(ps, col, cop, false, left);
	}
	else if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) clause;
		TsCondOp	cop;

		if (saop->useOr &&
			(col = var_column(linitial(saop->args), baserel, attcols, natts)) >= 0 &&
			is_request_key(col) && is_runtime_constant(lsecond(saop->args)) &&
			op_from_name(saop->opno, false, &cop) && cop == TS_OP_EQ)
			add_cond(ps, col, TS_OP_EQ, true, lsecond(saop->args));
	}
	else if ((col = var_column((Node *) clause, baserel, attcols, natts)) == TSC_LINE_LEVEL)
		add_cond(ps, col, TS_OP_EQ, false, bool_const(true));
	else if (is_notclause(clause) &&
			 var_column((Node *) get_notclausearg(clause), baserel, attcols, natts) == TSC_LINE_LEVEL)
		add_cond(ps, TSC_LINE_LEVEL, TS_OP_EQ, false, bool_const(false));
	else if (IsA(clause, BooleanTest) &&
			 var_column((Node *) ((BooleanTest *) clause)->arg, baserel, attcols, natts) == TSC_LINE_LEVEL)
	{
		BooleanTest *bt = (BooleanTest *) clause;

		if (bt->booltesttype == IS_TRUE || bt->booltesttype == IS_FALSE)
			add_cond(ps, TSC_LINE_LEVEL, TS_OP_EQ, false, bool_const(bt->booltesttype == IS_TRUE));
	}
}

static bool
cond_is_true_line_level(TsPlanState *ps)
{
	ListCell   *lc1,
			   *lc2;

	forboth(lc1, ps->cond_columns, lc2, ps->cond_exprs)
	{
		Expr	   *e = lfirst(lc2);

		if (lfirst_int(lc1) == TSC_LINE_LEVEL && IsA(e, Const) &&
			!((Const *) e)->constisnull && DatumGetBool(((Const *) e)->constvalue))
			return true;
	}
	return false;
}

void
ts_GetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	TsPlanState *ps = palloc0(sizeof(TsPlanState));
	Relation	rel = table_open(foreigntableid, NoLock);
	int			natts = RelationGetNumberOfAttributes(rel);
	int		   *attcols;
	Bitmapset  *attrs = NULL;
	ListCell   *lc;
	double		rows;

	ts_get_table_options(foreigntableid, &ps->tbl);
	ts_get_server_options(GetForeignTable(foreigntableid)->serverid, &ps->srv);
	attcols = ts_attr_columns(rel, ps->tbl.resource);
	table_close(rel, NoLock);

	ps->est_requests = 1;
	foreach(lc, baserel->baserestrictinfo)
		classify_clause(ps, lfirst_node(RestrictInfo, lc)->clause, baserel, attcols, natts);

	/* Which attributes the scan must fill; the rest stay NULL. */
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attrs);
	foreach(lc, baserel->baserestrictinfo)
		pull_varattnos((Node *) lfirst_node(RestrictInfo, lc)->clause, baserel->relid, &attrs);
	for (int attno = 1; attno <= natts; attno++)
		if (bms_is_member(attno - FirstLowInvalidHeapAttributeNumber, attrs) ||
			bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs))
			ps->attnos = lappend_int(ps->attnos, attno);

	rows = cond_is_true_line_level(ps) ? TS_ROWS_LINE_LEVEL_DEVICES : 1.0;
	if (ps->tbl.resource != TS_RES_BILLED_USAGE)
		rows *= TS_SEGMENTS_PER_SCOPE;
	if (ps->tbl.resource == TS_RES_COUNTRIES)
		rows *= TS_COUNTRIES_PER_SEGMENT;
	rows *= ps->est_requests;
	baserel->rows = clamp_row_est(rows *
								  clauselist_selectivity(root, baserel->baserestrictinfo, 0, JOIN_INNER, NULL));
	baserel->tuples = rows;
	baserel->fdw_private = ps;
}

void
ts_GetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	TsPlanState *ps = baserel->fdw_private;
	Cost		startup = TS_COST_PER_REQUEST * ps->est_requests;
	Cost		total = startup + baserel->tuples * TS_COST_PER_ROW;

	add_path(baserel, (Path *) ts_create_foreignscan_path(root, baserel, baserel->rows,
														   startup, total));
}

ForeignScan *
ts_GetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				  ForeignPath *best_path, List *tlist, List *scan_clauses, Plan *outer_plan)
{
	TsPlanState *ps = baserel->fdw_private;
	List	   *fdw_private;

	/* Every clause is still checked locally: conditions only shape the requests. */
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	fdw_private = list_make5(ps->cond_columns, ps->cond_ops, ps->cond_arrays, ps->attnos,
							 makeInteger((int) Min(ps->est_requests, INT_MAX)));
	return make_foreignscan(tlist, scan_clauses, baserel->relid, ps->cond_exprs, fdw_private,
							NIL, NIL, outer_plan);
}
