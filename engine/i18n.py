"""The engine's own words in English and Chinese.

Labels of entities and fields come from the YAML; this catalogue holds the
messages the engine itself writes (validation, conflicts), so an actor gets
every message in their language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MESSAGES: dict[str, dict[str, str]] = {
    "required": {"en": "This field is required.", "zh": "此字段为必填项。"},
    "unknown_field": {"en": "There is no such field.", "zh": "没有这个字段。"},
    "not_settable": {
        "en": "This field is set by the system and cannot be given a value.",
        "zh": "此字段由系统设置,不能手动赋值。",
    },
    "not_applicable": {
        "en": "This field does not apply here: {condition} is not met.",
        "zh": "此字段在当前情况下不适用:条件 {condition} 不成立。",
    },
    "readonly": {"en": "This field is read-only.", "zh": "此字段为只读。"},
    "expected_text": {"en": "Expected text.", "zh": "应为文本。"},
    "too_long": {
        "en": "At most {max} characters (got {length}).",
        "zh": "最多 {max} 个字符(当前 {length} 个)。",
    },
    "too_short": {"en": "At least {min} characters.", "zh": "至少 {min} 个字符。"},
    "pattern": {"en": "Does not have the expected form.", "zh": "格式不正确。"},
    "expected_integer": {"en": "Expected a whole number.", "zh": "应为整数。"},
    "expected_number": {"en": "Expected a number.", "zh": "应为数字。"},
    "decimal_comma": {
        "en": "Use a point for decimals (3.5); a comma may only group thousands (1,234.5).",
        "zh": "小数请用小数点(如 3.5);逗号只能用作千位分隔(如 1,234.5)。",
    },
    "too_many_decimals": {
        "en": "At most {scale} digits after the decimal point.",
        "zh": "小数点后最多 {scale} 位。",
    },
    "too_large_number": {
        "en": "The number is too large (at most {digits} digits before the decimal point).",
        "zh": "数字过大(整数部分最多 {digits} 位)。",
    },
    "integer_out_of_range": {
        "en": "The number is out of range (from {min} to {max}).",
        "zh": "数字超出范围({min} 至 {max})。",
    },
    "single_line": {
        "en": "Line breaks and control characters are not allowed here (one line of text).",
        "zh": "此处不允许换行或控制字符(只能是一行文本)。",
    },
    "control_character": {
        "en": "Control characters (such as NUL) are not allowed in text.",
        "zh": "文本中不允许控制字符(如 NUL)。",
    },
    "datetime_out_of_range": {
        "en": "The date and time is out of range (years 1 to 9999 in every time zone).",
        "zh": "日期时间超出范围(在任何时区都须在 1 至 9999 年之间)。",
    },
    "below_min": {"en": "Must be at least {min}.", "zh": "不能小于 {min}。"},
    "above_max": {"en": "Must be at most {max}.", "zh": "不能大于 {max}。"},
    "expected_boolean": {"en": "Expected yes or no.", "zh": "应为是或否。"},
    "expected_date": {
        "en": "Expected a date such as 2024-03-01.",
        "zh": "应为日期,例如 2024-03-01。",
    },
    "expected_datetime": {
        "en": "Expected a date and time such as 2024-03-01T09:30:00+08:00.",
        "zh": "应为日期时间,例如 2024-03-01T09:30:00+08:00。",
    },
    "invalid_choice": {
        "en": "'{value}' is not one of the choices: {choices}.",
        "zh": "“{value}”不在可选项中:{choices}。",
    },
    "invalid_email": {"en": "Not a valid e-mail address.", "zh": "邮箱地址无效。"},
    "invalid_phone": {
        "en": "Not a valid phone number (digits, spaces and + - ( ) only).",
        "zh": "电话号码无效(只能包含数字、空格和 + - ( ))。",
    },
    "invalid_url": {
        "en": "Not a valid web address (it must start with http:// or https://).",
        "zh": "网址无效(必须以 http:// 或 https:// 开头)。",
    },
    "expected_reference": {
        "en": "Expected the id of a {entity} record.",
        "zh": "应为{entity}记录的编号。",
    },
    "reference_missing": {
        "en": "There is no {entity} with id {value}.",
        "zh": "不存在编号为 {value} 的{entity}。",
    },
    "expected_list": {"en": "Expected a list.", "zh": "应为列表。"},
    "expected_lines": {
        "en": "Expected a list of lines, each a set of field values.",
        "zh": "应为明细行列表,每行为字段值的集合。",
    },
    "line_error": {"en": "Line {number}: {field}: {message}", "zh": "第 {number} 行:{field}:{message}"},
    "not_unique": {
        "en": "'{value}' is already used by another record.",
        "zh": "“{value}”已被其他记录使用。",
    },
    "expected_json": {"en": "Expected JSON data.", "zh": "应为 JSON 数据。"},
    "conflict": {
        "en": "This record was changed by someone else since you opened it "
        "(your version {expected}, now {current}); nothing was saved.",
        "zh": "此记录在您打开后已被他人修改(您的版本 {expected},当前版本 {current}),未保存任何内容。",
    },
    "not_found": {"en": "{entity} {id} was not found.", "zh": "未找到{entity} {id}。"},
    "still_referenced": {
        "en": "This record is still used by {count} {entity} record(s); remove those links first.",
        "zh": "此记录仍被 {count} 条{entity}记录引用,请先解除这些关联。",
    },
    "invalid_filter": {"en": "Cannot filter on this: {reason}", "zh": "无法按此筛选:{reason}"},
    "not_archivable": {
        "en": "{entity} records cannot be archived.",
        "zh": "{entity}记录不能归档。",
    },
    # -- access (roles, scopes, lookups) ----------------------------------------
    "may_not": {"en": "You may not {action} {entity}.", "zh": "您无权{action}{entity}。"},
    "may_not_change": {
        "en": "You may see this {entity} but not change it.",
        "zh": "您可以查看此{entity},但不能修改。",
    },
    "outside_scope": {
        "en": "You may not create records you could not work with afterwards.",
        "zh": "不能创建您之后无权处理的记录。",
    },
    "hidden_invalid": {
        "en": "This record cannot be saved as it is; ask someone who may see all of it.",
        "zh": "此记录当前无法保存,请联系有完整查看权限的人员。",
    },
    "still_referenced_elsewhere": {
        "en": "This record is still used by other records; it cannot be deleted.",
        "zh": "此记录仍被其他记录引用,不能删除。",
    },
    "lookup_not_found": {
        "en": "No {entity} matches exactly.",
        "zh": "没有完全匹配的{entity}。",
    },
    "lookup_throttled": {
        "en": "Too many look-ups that found nothing",
        "zh": "未找到记录的查询次数过多",
    },
    "lookup_ambiguous": {
        "en": "Several {entity} records match exactly; ask an administrator.",
        "zh": "有多条{entity}记录完全匹配,请联系管理员。",
    },
    "lookup_key_only": {
        "en": "Only the lookup fields may be given.",
        "zh": "只能填写查找字段。",
    },
    "lookup_needs_keys": {
        "en": "Give the values to look up.",
        "zh": "请填写要查找的值。",
    },
    "no_relation": {
        "en": "{entity}.{field} does not point at {parent}.",
        "zh": "{entity}.{field} 不指向 {parent}。",
    },
    "reference_not_found": {
        "en": "No {entity} matches exactly.",
        "zh": "没有完全匹配的{entity}。",
    },
    "invalid_aggregate": {
        "en": "Cannot compute '{spec}': use count, or one of {functions} with ':field'.",
        "zh": "无法计算“{spec}”:请使用 count,或 {functions} 加“:字段”。",
    },
    # -- stage flows -----------------------------------------------------------
    "stage_needs_transition": {
        "en": "The stage changes only through a transition: take '{transition}' to move to "
        "'{target}'.",
        "zh": "阶段只能通过流转变更:请使用“{transition}”进入“{target}”。",
    },
    "stage_no_transition": {
        "en": "The stage changes only through a transition, and none leads from '{current}' "
        "to '{target}'.",
        "zh": "阶段只能通过流转变更,而从“{current}”到“{target}”没有可用的流转。",
    },
    "stage_starts_initial": {
        "en": "A new {entity} starts in the stage '{initial}'; once it is created, move it on "
        "with a transition.",
        "zh": "新建的{entity}从“{initial}”阶段开始;创建后请通过流转推进。",
    },
    "pipeline_fixed": {
        "en": "A record stays in the pipeline it was created in.",
        "zh": "记录创建后不能更换所属流程。",
    },
    "readonly_in_stage": {
        "en": "This field cannot be changed while the record is in the stage '{stage}'.",
        "zh": "记录处于“{stage}”阶段时不能修改此字段。",
    },
    "no_workflow": {
        "en": "{entity} records do not move through stages.",
        "zh": "{entity}没有阶段流程。",
    },
    "no_transition_right": {
        "en": "You may not move {entity} records from stage to stage.",
        "zh": "您无权变更{entity}的阶段。",
    },
    "unknown_stage": {
        "en": "There is no stage '{stage}'; the stages are: {stages}.",
        "zh": "没有“{stage}”这个阶段;可用的阶段:{stages}。",
    },
    "transition_refused": {
        "en": "{entity} {id} cannot move from '{current}' to '{target}':",
        "zh": "{entity} {id} 不能从“{current}”进入“{target}”:",
    },
    "already_in_stage": {
        "en": "It is already in the stage '{stage}'.",
        "zh": "它已经处于“{stage}”阶段。",
    },
    "no_transition": {
        "en": "No transition leads from '{current}' to '{target}'; from here: {options}.",
        "zh": "没有从“{current}”到“{target}”的流转;当前可进入:{options}。",
    },
    "no_transition_closed": {
        "en": "'{current}' is a closed stage ({category}) and no transition reopens it to "
        "'{target}'; from here: {options}.",
        "zh": "“{current}”是已关闭的阶段({category}),没有流转可将其重新打开到“{target}”;"
        "当前可进入:{options}。",
    },
    "nowhere": {"en": "nowhere", "zh": "无"},
    "role_missing": {
        "en": "Only {roles} may take '{transition}'.",
        "zh": "只有{roles}可以执行“{transition}”。",
    },
    "transition_throttled": {
        "en": "Too many refused attempts to move this record",
        "zh": "移动此记录被拒绝的次数过多",
    },
    "guard_failed": {
        "en": "The condition of '{transition}' is not met: {guard}.",
        "zh": "不满足“{transition}”的条件:{guard}。",
    },
    "fields_missing": {
        "en": "Fill in before moving to '{target}': {fields}.",
        "zh": "进入“{target}”前请填写:{fields}。",
    },
    "readonly_given": {
        "en": "Read-only in the stage '{stage}': {fields}.",
        "zh": "在“{stage}”阶段为只读:{fields}。",
    },
    "managed_given": {
        "en": "The transition sets this field itself.",
        "zh": "此字段由流转自动设置。",
    },
    "ledger_append_only": {
        "en": "{entity} records are a ledger: they cannot be changed, archived or deleted. "
              "Record a correcting movement instead.",
        "zh": "{entity}是流水账:记录不能修改、归档或删除,请新增一笔冲正记录。",
    },
    "ledger_negative": {
        "en": "Not enough for {dimensions}: the balance is {balance}, this needs {needed}.",
        "zh": "{dimensions}数量不足:当前余额为{balance},本次需要{needed}。",
    },
}


def normalise(language: str | None) -> str:
    """The catalogue language for a user's setting (``zh-CN`` → ``zh``)."""
    return "zh" if language and language.lower().startswith("zh") else "en"


def words_in(catalogue: Mapping[str, Mapping[str, str]], key: str, language: str | None,
             **params: Any) -> str:
    """``key`` of a catalogue in the actor's language (English when no translation exists)."""
    texts = catalogue[key]
    lang = "zh" if language and language.startswith("zh") else "en"
    return texts.get(lang, texts["en"]).format(**params)


def message(key: str, language: str | None = "en", **params: Any) -> str:
    """An engine message in the actor's language."""
    return words_in(MESSAGES, key, language, **params)
