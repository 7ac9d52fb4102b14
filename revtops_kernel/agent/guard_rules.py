"""What the SQL guard lets through: node types, functions and table functions, as allowlists.

Everything not named here is refused. The lists cover analytic SQL on both backends (CTEs,
window functions, FILTER, CASE, casts, date and string functions, JSON extraction,
percentiles); nothing here reads files or URLs, touches settings or sessions, sleeps, runs a
query given as a string (``query_to_xml``, ``ts_stat``, DuckDB's ``query``), or reads catalogs.

Functions are named as sqlglot names them: a function sqlglot does not know arrives as
``Anonymous`` with the name as written; one it knows has a class whose ``sql_names()`` list the
names it answers to (``DATE_TRUNC`` parses to ``TimestampTrunc``, ``TIMESTAMP_TRUNC``).
"""

from __future__ import annotations

from sqlglot import exp


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Structural nodes of a read-only query. Functions (exp.Func) are checked by name instead.
ALLOWED_NODES: frozenset[type[exp.Expr]] = frozenset(
    {
        # queries and their clauses
        exp.Select,
        exp.Union,
        exp.Intersect,
        exp.Except,
        exp.Values,
        exp.With,
        exp.CTE,
        exp.Subquery,
        exp.From,
        exp.Join,
        exp.Lateral,
        exp.Table,
        exp.TableAlias,
        exp.Where,
        exp.Group,
        exp.GroupingSets,
        exp.Cube,
        exp.Rollup,
        exp.Having,
        exp.Qualify,
        exp.Order,
        exp.Ordered,
        exp.Limit,
        exp.Offset,
        exp.Fetch,
        exp.LimitOptions,
        exp.Distinct,
        exp.Window,
        exp.WindowSpec,
        exp.Filter,
        exp.WithinGroup,
        exp.IgnoreNulls,
        exp.RespectNulls,
        # names and values
        exp.Column,
        exp.Identifier,
        exp.Star,
        exp.Alias,
        exp.Aliases,
        exp.Dot,
        exp.Literal,
        exp.Boolean,
        exp.Null,
        exp.Var,
        exp.Placeholder,
        exp.Interval,
        exp.IntervalSpan,
        exp.DataType,
        exp.DataTypeParam,
        exp.Tuple,
        exp.Bracket,
        exp.Slice,
        exp.Lambda,
        exp.PropertyEQ,
        exp.Kwarg,
        exp.HexString,
        exp.BitString,
        exp.ByteString,
        exp.RawString,
        exp.National,
        exp.UnicodeString,
        exp.JSONPath,
        exp.JSONKeyValue,
        exp.JSONValue,
        exp.FormatJson,
        exp.JSONPathKey,
        exp.JSONPathRoot,
        exp.JSONPathSubscript,
        exp.JSONPathSlice,
        exp.JSONPathWildcard,
        # operators and predicates
        exp.Paren,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.IntDiv,
        exp.Mod,
        exp.Neg,
        exp.DPipe,
        exp.And,
        exp.Or,
        exp.Not,
        exp.Xor,
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.NullSafeEQ,
        exp.NullSafeNEQ,
        exp.Is,
        exp.In,
        exp.Between,
        exp.Like,
        exp.ILike,
        exp.SimilarTo,
        exp.Escape,
        exp.Exists,
        exp.Any,
        exp.All,
        exp.Overlaps,
        exp.AtTimeZone,
        exp.BitwiseAnd,
        exp.BitwiseOr,
        exp.BitwiseXor,
        exp.BitwiseNot,
        exp.BitwiseLeftShift,
        exp.BitwiseRightShift,
        exp.ArrayContainsAll,
        exp.ArrayOverlaps,
    }
)

# Functions callable anywhere, by lowercase name (as written, or one of sqlglot's names for it;
# the last group holds sqlglot's names for functions written as position, lpad, json_agg...).
ALLOWED_FUNCTIONS: frozenset[str] = _names(
    """
    count count_if sum avg mean min max median mode stddev stddev_pop stddev_samp variance
    var_pop var_samp corr covar_pop covar_samp regr_slope regr_intercept regr_r2 regr_count
    string_agg group_concat listagg array_agg list bool_and bool_or every any_value first last
    arg_max arg_min argmax argmin max_by min_by approx_count_distinct approx_distinct
    approx_quantile quantile quantile_cont quantile_disc percentile_cont percentile_disc
    approx_percentile bit_and bit_or grouping histogram array_unique_agg

    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value
    nth_value

    coalesce ifnull nvl nullif greatest least if iff case cast try_cast typeof exists

    abs ceil ceiling floor round trunc truncate sign sqrt cbrt power pow exp ln log log10 log2
    mod div pi degrees radians sin cos tan asin acos atan atan2 width_bucket isnan isinf even
    safe_divide random

    now current_date current_timestamp current_time localtimestamp localtime
    date_trunc timestamp_trunc datetrunc date_part datepart extract age date_diff datediff
    date_sub date_add timestamp_diff timestamp_add timestamp_sub time_to_str str_to_time
    str_to_date strftime strptime to_char to_date to_timestamp make_date make_timestamp
    make_interval date year month day dayofweek day_of_week dayofmonth day_of_month dayofyear
    day_of_year week weekofyear week_of_year yearweek quarter hour minute second epoch epoch_ms
    last_day last_day_of_month date_from_parts justify_days justify_hours justify_interval
    isodow dow isoyear to_days to_hours to_minutes to_seconds to_months to_years to_weeks
    date_bin datetime ts_or_ds_to_date ts_or_ds_add ts_or_ds_diff time_str_to_time
    time_str_to_date unix_to_time time_to_unix date_str_to_date date_to_date_str dayname
    monthname unix_seconds timestamp_from_parts generate_date_array time_to_time_str
    current_datetime

    lower upper lcase ucase length len char_length character_length octet_length substring
    substr trim ltrim rtrim btrim replace concat concat_ws split_part string_split split
    str_split position strpos instr locate left right lpad rpad regexp_replace regexp_matches
    regexp_like regexp_extract regexp_substr regexp_split_to_array regexp_count regexp_full_match
    starts_with startswith ends_with endswith contains initcap reverse repeat md5 ascii chr
    translate string_to_array array_to_string prefix suffix levenshtein jaro_winkler_similarity
    damerau_levenshtein hamming format printf to_hex unicode

    json_extract json_extract_string json_extract_scalar json_extract_path
    json_extract_path_text jsonb_extract json_bextract jsonb_extract_scalar
    json_bextract_scalar jsonb_extract_path jsonb_extract_path_text json_value json_array_length
    jsonb_array_length json_type jsonb_typeof json_typeof json_keys json_object json_build_object
    jsonb_build_object to_json to_jsonb json_agg jsonb_agg json_object_agg jsonb_object_agg
    json_group_array json_group_object parse_json json_contains jsonb_contains json_exists
    jsonb_exists json_format

    array array_length array_size cardinality unnest explode list_value array_contains
    list_contains array_has array_position list_position array_slice list_slice array_distinct
    list_distinct array_sort list_sort array_join array_filter list_filter filter
    array_transform list_transform transform array_concat list_concat array_cat array_append
    array_prepend array_remove array_first array_last array_reverse list_aggregate flatten
    array_any array_all

    struct struct_pack struct_extract row

    str_position strposition pad hex bitwise_and_agg bitwise_or_agg jarowinkler_similarity
    jsonobject jsonarrayagg jsonobjectagg jsonbobjectagg
    generate_series range exploding_generate_series gen_random_uuid uuid
    """
)

# Functions that may stand in FROM as a row source: they compute rows, they read nothing.
ALLOWED_TABLE_FUNCTIONS: frozenset[str] = frozenset(
    {"generate_series", "exploding_generate_series", "range", "unnest", "explode"}
)
