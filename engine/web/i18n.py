"""The web UI's own words in English and Chinese.

Entity and field labels come from the YAML and engine messages from
:mod:`engine.i18n`; this catalogue holds only what the pages themselves
say (buttons, headings, hints).  A plain dictionary instead of gettext
catalogues: two languages, a few dozen words, and no compile step for the
wheel.  A missing Chinese word falls back to English, a missing key to the
key itself, so a typo shows on the page instead of failing it.
"""

from __future__ import annotations

from typing import Any

LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}

WORDS: dict[str, dict[str, str]] = {
    "app_name": {"en": "VisionCRM", "zh": "VisionCRM"},
    "login": {"en": "Log in", "zh": "登录"},
    "logout": {"en": "Log out", "zh": "退出"},
    "login_name": {"en": "Login", "zh": "用户名"},
    "password": {"en": "Password", "zh": "密码"},
    "bad_login": {"en": "Wrong login or password.", "zh": "用户名或密码错误。"},
    "throttled": {
        "en": "Too many failed attempts. Try again in {minutes} minute(s).",
        "zh": "失败次数过多,请在 {minutes} 分钟后重试。",
    },
    "login_required": {"en": "Please log in.", "zh": "请先登录。"},
    "profile": {"en": "Profile", "zh": "个人设置"},
    "language": {"en": "Language", "zh": "语言"},
    "current_password": {"en": "Current password", "zh": "当前密码"},
    "new_password": {"en": "New password", "zh": "新密码"},
    "change_password": {"en": "Change password", "zh": "修改密码"},
    "password_changed": {"en": "Your password was changed.", "zh": "密码已修改。"},
    "wrong_password": {"en": "The current password is wrong.", "zh": "当前密码错误。"},
    "language_saved": {"en": "Language saved.", "zh": "语言已保存。"},
    "home": {"en": "Home", "zh": "首页"},
    "welcome": {"en": "Welcome, {name}", "zh": "欢迎,{name}"},
    "menu": {"en": "Menu", "zh": "菜单"},
    "new": {"en": "New", "zh": "新建"},
    "new_record": {"en": "New {entity}", "zh": "新建{entity}"},
    "edit": {"en": "Edit", "zh": "编辑"},
    "save": {"en": "Save", "zh": "保存"},
    "cancel": {"en": "Cancel", "zh": "取消"},
    "search": {"en": "Search", "zh": "搜索"},
    "search_placeholder": {"en": "Search…", "zh": "搜索…"},
    "filter": {"en": "Filter", "zh": "筛选"},
    "clear": {"en": "Clear", "zh": "清除"},
    "any": {"en": "Any", "zh": "全部"},
    "from": {"en": "From", "zh": "从"},
    "to": {"en": "To", "zh": "至"},
    "yes": {"en": "Yes", "zh": "是"},
    "no": {"en": "No", "zh": "否"},
    "none": {"en": "—", "zh": "—"},
    "no_records": {"en": "Nothing here yet.", "zh": "暂无记录。"},
    "total": {"en": "{count} in all", "zh": "共 {count} 条"},
    "previous": {"en": "Previous", "zh": "上一页"},
    "next": {"en": "Next", "zh": "下一页"},
    "showing": {"en": "{first}–{last}", "zh": "第 {first}–{last} 条"},
    "include_archived": {"en": "Include archived", "zh": "包含已归档"},
    "archived": {"en": "Archived", "zh": "已归档"},
    "archive": {"en": "Archive", "zh": "归档"},
    "restore": {"en": "Restore", "zh": "恢复"},
    "delete": {"en": "Delete", "zh": "删除"},
    "confirm_delete": {
        "en": "Delete this record for good?", "zh": "确定永久删除此记录吗?"},
    "confirm_archive": {"en": "Archive this record?", "zh": "确定归档此记录吗?"},
    "details": {"en": "Details", "zh": "详细信息"},
    "system_info": {"en": "Record information", "zh": "记录信息"},
    "owner": {"en": "Owner", "zh": "负责人"},
    "created_at": {"en": "Created", "zh": "创建时间"},
    "updated_at": {"en": "Updated", "zh": "更新时间"},
    "version": {"en": "Version", "zh": "版本"},
    "related": {"en": "Related", "zh": "相关记录"},
    "more": {"en": "More…", "zh": "更多…"},
    "timeline": {"en": "Timeline", "zh": "时间线"},
    "created_event": {"en": "created the record", "zh": "创建了记录"},
    "updated_event": {"en": "changed", "zh": "修改了"},
    "archived_event": {"en": "archived the record", "zh": "归档了记录"},
    "restored_event": {"en": "restored the record", "zh": "恢复了记录"},
    "transition_event": {"en": "moved the stage", "zh": "变更了阶段"},
    "stage_event": {"en": "{from_stage} → {to_stage}", "zh": "{from_stage} → {to_stage}"},
    "time_in_stage": {"en": "after {duration} in the previous stage",
                      "zh": "在上一阶段停留 {duration}"},
    "system": {"en": "System", "zh": "系统"},
    "stage": {"en": "Stage", "zh": "阶段"},
    "transitions": {"en": "Next steps", "zh": "下一步"},
    "not_available": {"en": "Not available now", "zh": "当前不可用"},
    "moved_to": {"en": "Moved to {stage}.", "zh": "已变更为{stage}。"},
    "kanban": {"en": "Board", "zh": "看板"},
    "list_view": {"en": "List", "zh": "列表"},
    "moved": {"en": "Moved.", "zh": "已移动。"},
    "move_refused": {"en": "This move was refused.", "zh": "无法移动。"},
    "move": {"en": "Move", "zh": "移动"},
    "move_to": {"en": "Move to", "zh": "移到"},
    "stale": {"en": "Stale", "zh": "停滞"},
    "overdue": {"en": "Overdue", "zh": "已超时"},
    "board_cut": {"en": "Only the first {count} records are shown.",
                  "zh": "仅显示前 {count} 条记录。"},
    "pipeline": {"en": "Pipeline", "zh": "管道"},
    "asked_on_the_way": {"en": "This step needs:", "zh": "此步骤需要填写:"},
    "dashboard": {"en": "Dashboard", "zh": "仪表盘"},
    "funnel": {"en": "Pipeline funnel", "zh": "销售漏斗"},
    "weighted_by_owner": {"en": "Weighted pipeline by owner", "zh": "按负责人的加权管道"},
    "won_lost_by_period": {"en": "Won and lost by month", "zh": "按月赢单与丢单"},
    "sla_overdue": {"en": "SLA overdue", "zh": "超出时限"},
    "won": {"en": "Won", "zh": "赢单"},
    "lost": {"en": "Lost", "zh": "丢单"},
    "nothing_overdue": {"en": "Nothing is overdue.", "zh": "没有超时的记录。"},
    "no_figures": {"en": "No figures yet.", "zh": "暂无数据。"},
    "due": {"en": "Due", "zh": "到期"},
    "records_count": {"en": "{count} records", "zh": "{count} 条"},
    "refused": {"en": "This step was refused:", "zh": "无法执行此操作:"},
    "saved": {"en": "Saved.", "zh": "已保存。"},
    "created": {"en": "Created.", "zh": "已创建。"},
    "deleted": {"en": "Deleted.", "zh": "已删除。"},
    "archived_done": {"en": "Archived.", "zh": "已归档。"},
    "restored_done": {"en": "Restored.", "zh": "已恢复。"},
    "fix_errors": {"en": "Please correct the fields marked below.",
                   "zh": "请修改下方标出的字段。"},
    "conflict_title": {"en": "Someone else changed this record",
                       "zh": "其他人已修改了此记录"},
    "conflict_help": {
        "en": "Their values are shown below; your changes are still in the form. "
              "Save again to keep yours.",
        "zh": "下方是对方保存的值;您的修改仍保留在表单中。再次保存将以您的修改为准。"},
    "their_value": {"en": "Saved by the other person", "zh": "对方保存的值"},
    "lines_total": {"en": "Total", "zh": "合计"},
    "add_line": {"en": "Add a line", "zh": "添加一行"},
    "remove_line": {"en": "Remove", "zh": "删除"},
    "type_to_search": {"en": "Type to search…", "zh": "输入以搜索…"},
    "error": {"en": "Something went wrong", "zh": "出错了"},
    "error_404": {"en": "Not found", "zh": "未找到"},
    "error_403": {"en": "Not allowed", "zh": "没有权限"},
    "error_400": {"en": "Bad request", "zh": "请求无效"},
    "error_409": {"en": "Conflict", "zh": "冲突"},
    "error_422": {"en": "Invalid data", "zh": "数据无效"},
    "error_429": {"en": "Too many attempts", "zh": "尝试次数过多"},
    "error_500": {"en": "Something went wrong on our side. Please try again.",
                  "zh": "服务器出错,请稍后重试。"},
    "csrf_failed": {
        "en": "The form expired or did not come from this site. Go back, reload and try again.",
        "zh": "表单已过期或来源无效。请返回、刷新后重试。"},
    "back_home": {"en": "Back to the home page", "zh": "返回首页"},
    "days": {"en": "{n} d", "zh": "{n} 天"},
    "hours": {"en": "{n} h", "zh": "{n} 小时"},
    "minutes": {"en": "{n} min", "zh": "{n} 分钟"},
}


def normalise(language: str | None) -> str:
    """The catalogue language for a user's setting (``zh-CN`` → ``zh``)."""
    return "zh" if language and language.lower().startswith("zh") else "en"


def translate(key: str, language: str | None = "en", **params: Any) -> str:
    """The UI word ``key`` in ``language``, with ``{params}`` filled in."""
    entry = WORDS.get(key)
    if entry is None:
        return key
    text = entry.get(normalise(language)) or entry["en"]
    return text.format(**params) if params else text
