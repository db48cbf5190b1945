"""Events (线下活动): offline meetups with capacity, a waitlist, level priority, a points price,
QR tickets and venue check-in.

- `states`: the statuses as enums and the lifecycle's state machine (`transition`);
- `model`: the Event and Registration tables, who may see and manage an event;
- `form_input`: what the organizer's form hands the model, its defaults and rules;
- `signups`: `signup_window`, signup, the waitlist, cancellation;
- `lifecycle`: create, edit, publish, cancel, complete, and settling them;
- `listings`, `checkin`, `jobs`.

The public names are re-exported here: `from models.events import signup, Event`.
"""
from models.events.states import (  # noqa: F401
    STATUSES, TRANSITIONS, EventStatus, RegistrationState, can_move, check_transition, transition,
)
from models.events.model import (  # noqa: F401
    CODE_ALPHABET, CODE_LENGTH, DESCRIPTION_MAX, KINDS, MAX_ATTENDANCE_POINTS, MAX_CAPACITY, MAX_COMPANIONS,
    MAX_PRICE, TITLE_MAX, TITLE_MIN, Event, Registration, can_manage, lock_event, next_arrival,
)
from models.events.form_input import (  # noqa: F401
    CANCEL_DEADLINE_BEFORE, SIGNUP_CLOSES_BEFORE, EventInput, check_map_url, default_map_url, validate_event,
)
from models.events.signups import (  # noqa: F401
    Cancellation, Opening, SignupInput, SignupWindow, WindowState, cancel_registration, normalise_plate,
    opening_for, opens_for, priority_suspended_until, promote_waitlisted, signup, signup_window,
)
from models.events.lifecycle import (  # noqa: F401
    cancel_event, complete_event, pay_attendance, pay_attendances, publish_event, save_event,
    settle_cancelled_event,
)
from models.events.listings import (  # noqa: F401
    EventCard, Page, card_of, managed_by, month_bounds, next_ticket, registrations_of, roster, tickets_of, upcoming,
    upcoming_page, waitlist_positions,
)
from models.events.checkin import CheckIn, check_in, find_ticket, parse_ticket  # noqa: F401
from models.events.jobs import AUTO_COMPLETE_AFTER, due_for_completion, send_reminders  # noqa: F401
